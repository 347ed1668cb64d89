"""load_official: our model equals the public code's arithmetic (tests/official_reference.py) on its weights."""
import pytest
import torch

from drcnet import count_parameters, create_model
from drcnet.model.official import load_official
from official_reference import OfficialDRCNet


def randomised_official(wf=16, seed=0):
    torch.manual_seed(seed)
    ref = OfficialDRCNet(wf=wf).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "bn_norm" in name:        # move the InstanceNorm affine away from its initial (1, 0)
                p.copy_(torch.rand_like(p) + 0.5 if name.endswith("weight") else torch.randn_like(p) * 0.3)
    return ref


def test_reference_has_the_paper_budget_at_wf64():
    assert count_parameters(OfficialDRCNet(wf=64)) == count_parameters(create_model("paper")) == 18_975_798


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("wrap", [None, "params", "params_ema"])
def test_outputs_equal_the_official_arithmetic(batch, wrap):
    ref = randomised_official()
    state = ref.state_dict()
    model = load_official({wrap: state} if wrap else state)
    assert model.cfg.region_stats == "official" and model.cfg.t == 0.8 and model.cfg.delta == 1e-4
    torch.manual_seed(1)
    x = torch.rand(batch, 3, 48, 40)
    with torch.no_grad():
        r1, r2 = ref(x)
        o1, o2 = model(x)
    assert (o1 - r1).abs().max() < 1e-4
    assert (o2 - r2).abs().max() < 1e-4


def test_a_pth_file_loads_weights_only(tmp_path):
    ref = randomised_official(seed=3)
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params": ref.state_dict()}, path)
    model = load_official(path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (model(x)[1] - ref(x)[1]).abs().max() < 1e-4


def test_overrides_switch_back_to_paper_settings():
    model = load_official(randomised_official().state_dict(), t=0.75, delta=1e-6, region_stats="sample")
    assert (model.cfg.t, model.cfg.delta, model.cfg.region_stats) == (0.75, 1e-6, "sample")


def test_sample_mode_agrees_with_official_at_batch_1_with_initial_affine():
    torch.manual_seed(0)
    ref = OfficialDRCNet(wf=16).eval()           # InstanceNorm affine at (1, 0)
    official = load_official(ref.state_dict())
    sample = load_official(ref.state_dict(), region_stats="sample")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (official(x)[1] - sample(x)[1]).abs().max() < 1e-3


def test_unknown_and_missing_keys_are_named():
    state = randomised_official().state_dict()
    state["down_path_1.0.extra_conv.weight"] = torch.zeros(1)
    del state["last.bias"]
    with pytest.raises(ValueError) as err:
        load_official(state)
    assert "down_path_1.0.extra_conv.weight" in str(err.value) and "last.bias" in str(err.value)


def test_not_a_drcnet_state_dict():
    with pytest.raises(ValueError, match="not an official DRCNet"):
        load_official({"foo.weight": torch.zeros(1)})


def test_an_authors_pth_exports_to_a_hub_folder_in_float32(tmp_path):
    from drcnet import DRCNet
    from drcnet.model.hub import export_for_hub

    ref = randomised_official(seed=4)
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params": ref.state_dict()}, path)
    folder = export_for_hub(path, tmp_path / "hub")
    model = DRCNet.from_pretrained(folder)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (model(x)[1] - ref(x)[1]).abs().max() < 1e-4          # float32: nothing rounded away
