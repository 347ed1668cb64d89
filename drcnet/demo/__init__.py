"""The demo's logic as plain, tested functions; app.py only builds the Gradio UI and wires it to these.

An import-only facade: it holds no state and no logic. The state lives in one Registry (registry.py: checkpoints,
loaded models, locks, limits, prepared inputs, the output folder), made once by app.py and passed as the first
argument of every handler; the six input settings travel as one InputSettings (settings.py, which also holds their
order). Each tab has its own module (restore_tab, inspect_tab, intra_cr_tab, compare_tab; upload for what the page
says on upload; reading for how an upload is read; files for the file facts caches are keyed by; example_results for
the examples' results computed at start-up; zerogpu for Hugging Face ZeroGPU; figures for the matplotlib helpers).
Tests: patch the registry or the defining module, not this facade.

Every handler takes file paths and plain values and returns numpy arrays / PIL images / dicts, so it runs
without Gradio (tests, scripts/measure_app.py). Errors a user can act on are raised as DemoError (or the
project's ImageError / CheckpointError, both ValueErrors); app.py turns them into gr.Error messages.
"""
from drcnet.core.paths import ASSETS  # noqa: F401
from drcnet.core.tasks import TASKS  # noqa: F401
from drcnet.demo.compare_tab import (INPUT, CompareResult, baseline_info, compare, compare_figure,  # noqa: F401
                                     compare_pair, compare_steps, crop_box, short_name, table_order, zoom_crops,
                                     zoom_point, zoom_source)
from drcnet.demo.example_results import ExampleResults, StoredResult  # noqa: F401
from drcnet.demo.examples import example_caption, example_gallery, examples, known_degradation  # noqa: F401
from drcnet.demo.figures import fig_to_image  # noqa: F401
from drcnet.demo.inputs import Prepared, PreparedCache, prepare, quality, resize_max, to_pil  # noqa: F401
from drcnet.demo.inspect_tab import (MASK_NOTE, InspectResult, coverage_t, explain_mask, inspect,  # noqa: F401
                                     inspect_figure, T_SWEEP, prepare_small, probe_run, quantile_t, science_page,
                                     t_at_quantile, t_sweep)
from drcnet.demo.intra_cr_tab import IntraCRResult, cr_ratios, intra_cr, other_example  # noqa: F401
from drcnet.demo.messages import (NO_TASK, DemoError, NoTaskSelected, check_task, hide_paths,  # noqa: F401
                                  setting_label, status_markdown, user_message)
from drcnet.demo.outputs import OutputFolder  # noqa: F401
from drcnet.demo.registry import Registry  # noqa: F401
from drcnet.demo.restore_tab import RestoreResult, describe_info, restore  # noqa: F401
from drcnet.demo.settings import InputSettings, Limits, takes_input_settings  # noqa: F401
from drcnet.demo.upload import (UploadReport, check_input, check_reference, diagnose_file,  # noqa: F401
                                diagnosis_message, no_task_message)
from drcnet.demo.zerogpu import (SECONDS as GPU_SECONDS, gpu_decorator, on_zero_gpu, restore_seconds,  # noqa: F401
                                 serving_options)
