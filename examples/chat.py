"""Fine-tune a pretrained chat model with LoRA and ask it something: the Python twin of

    make pretrained
    kbuild train specs/aeslc_smollm2.yaml --set train.max_steps=2 --set data.limit=8
    kbuild generate runs/aeslc-smollm2/<stamp> --prompt "Can we move Friday's meeting to 3 pm?"
    kbuild chat runs/aeslc-smollm2/<stamp>

Run from the repository root after `make pretrained` (KBUILD_DATA pointing at the data sets):

    python examples/chat.py                                # a tiny run: 2 steps on 8 emails (minutes on a CPU)
    python examples/chat.py --steps 100 --limit 400        # the spec's own budget (about 30 minutes on 2 cores)
    python examples/chat.py --spec specs/dailydialog_smollm2.yaml --message "Hi! How was your weekend?"
    python examples/chat.py --run runs/aeslc-smollm2/<stamp>   # no training: ask a given run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kbuild

ROOT = Path(__file__).resolve().parent.parent
EMAIL = ("Hi all, the quarterly review moves from Thursday to Friday at 3 pm in room 32C. "
         "Please bring the updated gas trading figures. Thanks, Kim")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "aeslc_smollm2.yaml")
    parser.add_argument("--run", type=Path, help="a trained chat run folder: skip training")
    parser.add_argument("--steps", type=int, default=2, help="train.max_steps")
    parser.add_argument("--limit", type=int, default=8, help="data.limit: rows read per split")
    parser.add_argument("--message", default=EMAIL, help="the user message to answer (an email for the AESLC spec)")
    args = parser.parse_args()

    if args.run is None:
        spec = kbuild.load_spec(args.spec, [f"train.max_steps={args.steps}", f"data.limit={args.limit}"])
        run = kbuild.train(spec)
        results = run.results
        print(f"trained {results['trainable_parameters']:,} of {results['parameters']:,} parameters in "
              f"{results['train_time_s']} s; valid reply perplexity {results['metrics']['valid']['perplexity']:.2f}")
        folder = run.path
    else:
        folder = args.run

    # The run answers through the same in-graph decoding its export has; the spec's
    # preprocess.chat.prompt_template (if any) wraps the message as training wrapped the prompts.
    from kbuild.generation.chat import open_chat

    session = open_chat(folder)
    print(f"user: {args.message}")
    print(f"assistant: {session.reply(args.message)}")


if __name__ == "__main__":
    main()
