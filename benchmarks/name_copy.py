"""Can a backbone copy the puzzle's names? Two teacher-forced measures on held-out KK puzzles.

A Knights-and-Knaves answer must name the puzzle's own people, so a model that
cannot copy names from its prompt scores zero however well it reasons. Both
measures are greedy next-token accuracy on name tokens (see ``trainers/probes.py``):

* answer position: prompt + gold answer list "(1) NAME is a ... (2) NAME ...";
  the introduction fixes the next name, so a model that reads reaches 1.0;
* question position: names in the question after the introduction; which person
  a statement mentions is not predictable, so even a reader stays well below 1
  (1/people = 0.333 for a model that knows only the set of names);
* role transfer: a <think> part states a (random) role for every person, the answer
  repeats them; accuracy on the answer's role words (a reader reaches 1.0, a model
  that ignores the stated roles stays near 0.5).

Models are compared side by side on the same puzzles:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/name_copy.py tiny tiny-base smollm2-135m RUN/sft/model
    .venv/bin/python benchmarks/name_copy.py --names heldout tiny-base   # names no training ever used
"""

from __future__ import annotations

import argparse
import time

from tailor_evo.models.registry import load
from tailor_evo.tasks import get_task
from tailor_evo.tasks.kk import text as T
from tailor_evo.trainers.probes import name_copy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="backbone names or model directories")
    ap.add_argument("--n", type=int, default=100, help="held-out puzzles")
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--seed", type=int, default=999)
    ap.add_argument("--names", default="common", choices=sorted(T.NAME_LISTS),
                    help="the puzzles' name list: common (the evaluation sets'), pool (training), heldout (never "
                         "trained on), rare")
    args = ap.parse_args()
    task = get_task("kk")
    problems = task.generate(args.n, args.seed, levels=[args.people], names=args.names)
    pool = T.NAME_LISTS[args.names]
    print(f"{args.n} held-out {args.people}-person puzzles, names {args.names!r}; chance without reading "
          f"1/{len(pool)} = {1 / len(pool):.3f}; knowing only the set of people 1/{args.people} = "
          f"{1 / args.people:.3f}")
    print(f"{'model':50s} {'answer pos.':>11s} {'tokens':>7s} {'question pos.':>13s} {'tokens':>7s} "
          f"{'role transfer':>13s} {'tokens':>7s} {'seconds':>8s}")
    for spec in args.models:
        start = time.time()
        model, tokenizer = load(spec)
        r = name_copy(model, tokenizer, problems, task)
        print(f"{spec[-50:]:50s} {r.answer_accuracy:11.3f} {r.answer_tokens:7d} {r.question_accuracy:13.3f} "
              f"{r.question_tokens:7d} {r.role_accuracy:13.3f} {r.role_tokens:7d} {time.time() - start:8.1f}")


if __name__ == "__main__":
    main()
