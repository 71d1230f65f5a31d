"""Evaluates many targeting keys against flagd flag definitions with the real flagd evaluator
of the OpenFeature Python contrib (`openfeature-flagd-core`), for rollgate's target tests.

Usage: python3 flagd_batch_eval.py < JOBS.json
Input: a JSON list of jobs {"definition": "<flagd JSON text>", "flag": "<key>", "keys": [...]},
each optionally with "attributes": [{...}, ...], the evaluation context's other attributes for
each key, in order.
Output: one JSON list per job, on one line: the variant served to each key, in order (null
when the evaluator served none). A definition the evaluator refuses is an error on stderr and
exit status 1.
"""

import json
import sys

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext


def main():
    jobs = json.load(sys.stdin)
    results = []
    for job in jobs:
        core = FlagdCore()
        core.set_flags(job["definition"])
        variants = []
        attributes = job.get("attributes") or [{}] * len(job["keys"])
        for key, attrs in zip(job["keys"], attributes):
            context = EvaluationContext(targeting_key=key, attributes=attrs)
            details = core.resolve_boolean_value(job["flag"], False, context)
            variants.append(details.variant)
        results.append(variants)
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
