"""An integration's round trip with Caseloop over the REST API, using caseloop/client.py.

    CASELOOP_URL=http://127.0.0.1:8000 CASELOOP_API_KEY=cl_… .venv/bin/python examples/integrate.py

(or --url and --key). The key needs the scopes workflows:read, cases:read, cases:write,
decisions:read and audit:read. With ``manage.py quickstart`` running, create a key on the
organisation page. The script:

1. checks the key (ping) and picks a workflow (--workflow, or the first one);
2. submits one live case decided within the request (``decide="sync"``) and prints the decision
   and its explanation;
3. submits a batch in one all-or-nothing request, queued for the decisions workers, and waits for
   each decision (long-poll);
4. shows how a rejected request reads (ValidationFailed with errors by item and field);
5. exports the organisation's audit trail to a file, re-verifies it offline, and compares the chain
   head with the server's own verification.

Case fields come from --cases-file (JSON lines, one object of fields a line) or, for a demo, are
copied from the workflow's labelled cases.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from caseloop.client import Caseloop, CaseloopError, ValidationFailed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("CASELOOP_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("CASELOOP_API_KEY"), help="API key (cl_…)")
    parser.add_argument("--workflow", type=int, help="workflow id (default: the first one)")
    parser.add_argument("--cases-file", type=Path, help="JSON lines of case fields to submit")
    parser.add_argument("--batch", type=int, default=5, help="cases in the bulk request (default 5)")
    parser.add_argument("--audit-out", type=Path, default=Path("audit-export.jsonl"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each decision")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("give an API key with --key or CASELOOP_API_KEY")
    return args


def sample_fields(client: Caseloop, workflow: int, args: argparse.Namespace) -> list[dict]:
    if args.cases_file:
        lines = args.cases_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    fields = []
    for case in client.cases(workflow=workflow, split="test"):
        fields.append(case.fields)
        if len(fields) > args.batch:
            break
    if not fields:
        raise SystemExit("the workflow has no test cases to copy fields from; pass --cases-file")
    return fields


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with Caseloop(args.url, args.key) as client:
        print(f"connected to {args.url} as organisation {client.ping()['organization']}")
        workflow = args.workflow or client.workflows()[0]["id"]
        fields = sample_fields(client, workflow, args)

        case = client.submit_case(workflow, fields[0], external_id="integrate-sync", decide="sync")
        if case.decision is None:
            print(f"case {case.id} is {case.status}: no production policy decided it yet")
        else:
            decision = case.decision
            print(f"case {case.id}: {decision.name} {decision.arguments} ({decision.status})")
            print(f"  why: {decision.explanation.get('text', '')}")

        batch = [
            {"fields": f, "external_id": f"integrate-{i}"} for i, f in enumerate(fields[1 : args.batch + 1])
        ]
        if batch:
            created = client.submit_cases(workflow, batch)
            print(f"submitted {len(created)} cases in one request; waiting for their decisions")
            for queued in created:
                try:
                    decided = client.wait_for_decision(queued.id, timeout=args.timeout)
                    print(f"  case {queued.id}: {decided.name} ({decided.status})")
                except CaseloopError as exc:
                    print(f"  case {queued.id}: {exc}")

        try:
            client.submit_cases(workflow, [{"fields": fields[0]}, {"fields": {"no_such_field": 1}}])
        except ValidationFailed as exc:
            print("a rejected batch creates nothing; the errors name each item and field:")
            for path, messages in sorted(exc.errors.items()):
                print(f"  {path}: {'; '.join(messages)}")

        head = client.export_audit(args.audit_out)
        from caseloop.audit.export import verify_export_file

        offline = verify_export_file(args.audit_out)
        server = client.verify_audit()
        print(f"audit export {args.audit_out}: re-verified offline: {offline.ok}")
        print(f"chain head #{head.sequence} {head.hash}")
        print(f"server verification: ok={server.ok}, same head: {server.head == head}")
        return 0 if offline.ok and server.ok and server.head == head else 1


if __name__ == "__main__":
    raise SystemExit(main())
