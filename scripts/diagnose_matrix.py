"""Print the confusion matrix of drcnet.serve.diagnose on the test photos (the table in docs/diagnose.md).

    python scripts/diagnose_matrix.py                 # data/test (scripts/fetch_data.py), else skimage's photos
    python scripts/diagnose_matrix.py --images val    # any split or folder of clean photos
    python scripts/diagnose_matrix.py --evaluation-only   # only the evaluation settings and the photos themselves

The pictures (drcnet.serve.diagnose.confusion_matrix): every evaluation setting of every task, box and linear blurs of
9, 15 and 21 px, and each photo as it is, under a smooth sky and as a night scene.
"""
import argparse
import time

from drcnet.serve.diagnose import confusion_matrix, matrix_markdown, matrix_photos, wrong_diagnoses
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="test", help="test | val | a folder of clean photos | skimage")
    p.add_argument("--max-side", type=int, default=256, help="centre crop, as the evaluation's")
    p.add_argument("--evaluation-only", action="store_true",
                   help="leave out the box and linear blurs and the sky and night photos")
    p.add_argument("--errors", action="store_true", help="also list every wrong diagnosis")
    args = p.parse_args()
    images, where = matrix_photos(args.images)
    start = time.perf_counter()
    result = confusion_matrix(images, max_side=args.max_side, kinds=not args.evaluation_only)
    print(f"{len(images)} photos ({where}), {args.max_side} px centre crops, {len(result['items'])} pictures "
          f"({time.perf_counter() - start:.0f} s)\n")
    print(matrix_markdown(result))
    if args.errors:
        print("\n".join(["", *wrong_diagnoses(result)]))


if __name__ == "__main__":
    main()
