"""Print the confusion matrix of drcnet.diagnose on the test photos (the table in docs/diagnose.md).

    python scripts/diagnose_matrix.py                 # data/test (scripts/fetch_data.py), else skimage's photos
    python scripts/diagnose_matrix.py --images val    # any split or folder of clean photos
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drcnet.data import data_root, list_images  # noqa: E402
from drcnet.diagnose import confusion_matrix, matrix_markdown, skimage_test_photos  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="test", help="test | val | a folder of clean photos | skimage")
    p.add_argument("--max-side", type=int, default=256, help="centre crop, as the evaluation's")
    p.add_argument("--errors", action="store_true", help="also list every wrong diagnosis")
    args = p.parse_args()
    if args.images == "skimage" or (args.images == "test" and not (data_root() / "test").is_dir()):
        images, where = skimage_test_photos(), "scikit-image's photos of the test split"
    else:
        split = args.images in ("test", "val")
        folder = data_root() / args.images if split else Path(args.images)
        images, where = {p.name: p for p in list_images(folder)}, f"data/{args.images}" if split else str(folder)
    result = confusion_matrix(images, max_side=args.max_side)
    print(f"{len(images)} photos ({where}), {args.max_side} px centre crops\n")
    print(matrix_markdown(result))
    if args.errors:
        for true, pred, setting, name in result["items"]:
            if true != pred:
                print(f"- {name}, {setting}: diagnosed {pred}")


if __name__ == "__main__":
    main()
