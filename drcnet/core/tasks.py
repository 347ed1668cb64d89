"""The task list: the one place that names the tasks (every other module imports it from here)."""

TASKS = ("denoise", "derain", "deblur")
