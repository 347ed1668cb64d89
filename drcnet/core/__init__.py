"""Small shared facts below everything else: the task list, where files live and how they are named, the device
and precision pick, the file helpers and the image metrics. Imports nothing from the rest of drcnet."""
