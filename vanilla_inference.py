"""Time the vanilla model (the full-size teacher): accuracy, model-only and end-to-end speed, size.

Measures on a seeded, stratified sample of the IMDB test split, exactly as ``compare_student.py``
measures the student: the same sample (same fingerprint), the same code
(``labelless.timing``). Appends one ``results.txt`` line per batch size; if a comparable student
measurement is there, prints the side-by-side comparison. ``--both`` times the student against vanilla and
the bar in this process, passes run back to back in pairs, and reports the median speedups: the numbers
to quote.

    python vanilla_inference.py --preset smoke --data ../shared/data/imdb
    python vanilla_inference.py --both --threads 2
"""

import common

PROG = "vanilla_inference.py"


def parse_args(argv=None):
    return common.add_inference_args(common.make_parser(PROG, __doc__)).parse_args(argv)


def main(argv=None):
    return common.timing_main(parse_args(argv), PROG, "vanilla")


if __name__ == "__main__":
    main()
