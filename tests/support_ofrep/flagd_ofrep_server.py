"""An OFREP single-flag evaluation endpoint backed by the real flagd evaluator of the
OpenFeature Python contrib (`openfeature-flagd-core`), for rollgate's tests.

Usage: python3 flagd_ofrep_server.py FLAGS.json
Serves on 127.0.0.1 on a free port, prints the port on the first line of stdout, and runs
until killed. Only loopback is used.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import FlagNotFoundError, OpenFeatureError, TypeMismatchError

PREFIX = "/ofrep/v1/evaluate/flags/"
CORE = FlagdCore()


def resolve(key, context):
    """Resolves a flag whatever its type: flagd-core resolves per type, so try each."""
    targeting_key = context.pop("targetingKey", None)
    ctx = EvaluationContext(targeting_key=targeting_key, attributes=context)
    resolvers = (
        lambda: CORE.resolve_boolean_value(key, False, ctx),
        lambda: CORE.resolve_string_value(key, "", ctx),
        lambda: CORE.resolve_float_value(key, 0.0, ctx),
        lambda: CORE.resolve_object_value(key, {}, ctx),
    )
    for resolver in resolvers:
        try:
            return resolver()
        except TypeMismatchError:
            continue
    raise TypeMismatchError("no type fits")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY each answer waits for a
    # delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if not self.path.startswith(PREFIX):
            return self.reply(404, {"errorDetails": "no such route"})
        key = unquote(self.path[len(PREFIX):])
        try:
            context = dict(json.loads(raw or b"{}").get("context", {}))
        except (ValueError, AttributeError):
            return self.reply(400, {"key": key, "errorCode": "PARSE_ERROR"})
        try:
            details = resolve(key, context)
        except FlagNotFoundError as e:
            return self.reply(404, {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": str(e)})
        except OpenFeatureError as e:
            return self.reply(400, {"key": key, "errorCode": "GENERAL", "errorDetails": str(e)})
        reason = getattr(details.reason, "value", details.reason)
        self.reply(200, {"key": key, "value": details.value, "variant": details.variant, "reason": str(reason)})


class Server(ThreadingHTTPServer):
    # The probe opens 16 connections at once; the default backlog of 5 drops SYNs, which
    # then wait a second to be retried.
    request_queue_size = 128
    daemon_threads = True


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        CORE.set_flags(f.read())
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
