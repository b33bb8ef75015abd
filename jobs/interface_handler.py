"""Job 5, interface handler: POST texts to MLFlask's /predict and check the answers.

INPUT_TEXTS holds the texts, as a JSON list or one text per line (default: the sample project's four
sentences). The job checks the response schema and label set, then behavioural expectations: obviously
positive and negative reviews must come out right, and a title swap must not flip a label. It prints a
table of text, label and score, and exits non-zero on any failure.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.errors import PlatformError
from mlplatform.serving.behaviour import check_interface, predictions_table, texts_to_check
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings

log = logging.getLogger("interface_handler")


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    cli.flag(p, "--name", "model_name", settings, dest="name")
    cli.flag(p, "--texts", "input_texts", settings, dest="texts")
    p.add_argument("--skip-behaviour", action="store_true", help="check the schema only")
    return p


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)

    def job() -> int:
        client = MLFlaskClient.from_settings(settings)
        report = check_interface(client, args.name, texts_to_check(args.texts), behaviour=not args.skip_behaviour)
        response = report.response
        print(f"{args.name} (run {response.get('run_id', '?')}) at {client.base_url}:")
        print(predictions_table(report.texts, response["predictions"]))
        if args.skip_behaviour:
            return 0
        checks = report.checks
        print(
            cli.table(
                [["PASS" if c.passed else "FAIL", c.name, c.detail] for c in checks], ["result", "check", "detail"]
            )
        )
        failed = report.failed
        if failed:
            raise PlatformError(f"{len(failed)} of {len(checks)} behavioural checks failed")
        print(f"all {len(checks)} behavioural checks passed")
        return 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
