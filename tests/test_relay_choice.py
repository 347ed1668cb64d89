"""`--task auto`: the relay trains the task whose next leg buys the most validation dB per minute, judged from the
legs recorded under each task's current recipe (drcnet.ops.relay.choose_task). Hand-made records only."""
from drcnet.ops import relay
from drcnet.train.recipe import Recipe

L1 = {"loss": "l1", "lr": 1e-4, "patch": 128}
RECIPES = {task: Recipe(task, dict(L1)) for task in ("denoise", "derain", "deblur")}
SHORT = {"denoise": -0.1, "derain": -0.2, "deblur": -0.3}          # every task still misses its targets


def leg(task: str, gain: float, minutes: float = 60.0, ship: bool = True, recipe: dict | None = L1) -> dict:
    """A leg trained with `recipe` (None: a record from before legs stored their recipe)."""
    record = {"task": task, "date": "2026-12-08 10:00", "minutes": minutes, "val_before": 30.0,
              "val_after": 30.0 + gain, "ship": ship}
    return record if recipe is None else dict(record, recipe=recipe)


def test_a_plateaued_task_is_not_picked_while_another_still_gains():
    legs = {"deblur": [leg("deblur", 0.01), leg("deblur", 0.01)],          # 0.01 dB/h: plateaued
            "denoise": [leg("denoise", 0.15)], "derain": [leg("derain", 0.4)]}
    task, reason = relay.choose_task(legs, RECIPES, SHORT)
    assert task == "derain"
    assert reason.startswith("derain: +0.40 dB/h on validation over its last 1 leg(s)")
    assert "then denoise: +0.15 dB/h" in reason and "deblur: plateaued, +0.01 dB/h" in reason
    assert reason.index("denoise") < reason.index("deblur")


def test_a_plateaued_task_is_picked_only_when_every_task_is_plateaued():
    legs = {t: [leg(t, g), leg(t, g)] for t, g in (("denoise", 0.02), ("derain", 0.04), ("deblur", 0.03))}
    assert relay.choose_task(legs, RECIPES, SHORT)[0] == "derain"              # the least flat of the flat


def test_a_run_of_unshipped_legs_is_a_plateau_even_when_validation_moved():
    legs = {"derain": [leg("derain", 0.5, ship=False), leg("derain", 0.5, ship=False)],
            "denoise": [leg("denoise", 0.1)], "deblur": [leg("deblur", 0.1)]}
    task, reason = relay.choose_task(legs, RECIPES, SHORT)
    assert task == "deblur" and "derain: plateaued" in reason                # equal rates: the furthest short
    one = dict(legs, derain=legs["derain"][:1])                              # a single refusal is no run
    assert relay.choose_task(one, RECIPES, SHORT)[0] == "derain"


def test_a_task_with_no_leg_under_its_current_recipe_is_tried_first():
    legs = {"denoise": [leg("denoise", 1.0)], "derain": [leg("derain", 1.0)], "deblur": []}
    task, reason = relay.choose_task(legs, RECIPES, SHORT)
    assert task == "deblur" and reason.startswith("deblur: no leg under its current recipe yet, worth measuring")


def test_a_leg_trained_under_an_older_recipe_says_nothing_about_the_current_one():
    older = dict(L1, loss="intra-cr")
    legs = {"derain": [leg("derain", 2.0, recipe=older), leg("derain", 0.01), leg("derain", 0.01)],
            "denoise": [leg("denoise", 0.2)], "deblur": [leg("deblur", 0.1)]}
    task, reason = relay.choose_task(legs, RECIPES, SHORT)
    assert task == "denoise" and "derain: plateaued, +0.01 dB/h" in reason and "last 2 leg(s)" in reason
    changed = {**RECIPES, "denoise": Recipe("denoise", dict(L1, patch=256))}    # denoise's recipe just changed
    assert relay.choose_task(legs, changed, SHORT)[0] == "denoise"
    assert "denoise: no leg under its current recipe yet" in relay.choose_task(legs, changed, SHORT)[1]
    narrower = dict(L1)
    narrower.pop("patch")                                     # recorded before the recipe named a patch size
    assert not relay.under_recipe(leg("deblur", 0.1, recipe=narrower), L1)


def test_records_from_before_legs_stored_their_recipe_are_matched_on_the_loss_of_their_date():
    denoise_ic = dict(leg("denoise", 3.0, recipe=None), date="2026-11-30 18:46")   # L1 + Intra-CR then
    denoise_l1 = dict(leg("denoise", 0.01, recipe=None), date="2026-12-07 00:48")
    deblur_old = dict(leg("deblur", 0.2, recipe=None), date="2026-11-30 18:12")    # deblur: always L1
    assert not relay.under_recipe(denoise_ic, L1) and relay.under_recipe(denoise_l1, L1)
    assert relay.under_recipe(deblur_old, L1)
    assert relay.under_recipe(denoise_ic, dict(L1, loss="intra-cr"))
    task, reason = relay.choose_task({"denoise": [denoise_ic, denoise_l1], "deblur": [deblur_old], "derain": []},
                                     RECIPES, {"denoise": -1.0, "deblur": -0.1, "derain": 0.5})
    assert task == "deblur" and "denoise: plateaued" in reason


def test_met_goals_come_after_every_task_still_short():
    legs = {"denoise": [leg("denoise", 1.0)], "derain": [leg("derain", 0.2)], "deblur": []}
    gaps = {"denoise": 0.02, "derain": -0.2, "deblur": 0.3}
    task, reason = relay.choose_task(legs, RECIPES, gaps)
    assert task == "derain"
    assert "denoise: +1.00 dB/h" in reason and "targets met (+0.02 dB)" in reason
    assert reason.index("deblur") < reason.index("denoise")                # among met tasks too: unmeasured first


def test_ties_and_unknowns_are_ordered_the_same_way_every_time():
    empty = {"denoise": [], "derain": [], "deblur": []}
    assert relay.choose_task(empty, RECIPES, SHORT)[0] == "deblur"              # unknown: furthest short first
    flat = {t: -0.2 for t in RECIPES}
    assert relay.choose_task(empty, RECIPES, flat)[0] == "deblur"               # equal gaps: by name
    reverse = dict(reversed(list(RECIPES.items())))
    assert relay.choose_task(empty, reverse, flat) == relay.choose_task(empty, RECIPES, flat)
    no_scores = dict(SHORT, derain=None)                                      # no test file: measure it first
    assert relay.choose_task(empty, RECIPES, no_scores)[0] == "derain"
    same = {t: [leg(t, 0.3)] for t in RECIPES}
    assert relay.choose_task(same, RECIPES, SHORT)[0] == "deblur"              # equal rates: furthest short
    assert relay.choose_task(same, RECIPES, {"denoise": -0.3, "derain": -0.3, "deblur": -0.1})[0] == "denoise"
    assert relay.choose_task(same, RECIPES, flat)[0] == "deblur"               # equal rates and gaps: by name
    zero = {**same, "deblur": [leg("deblur", 0.3, minutes=0.0)]}             # no minutes: a rate of 0, plateaued
    assert relay.choose_task(zero, RECIPES, SHORT)[0] == "derain"
