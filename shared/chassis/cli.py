"""`expediente`: the operators' command line: mint tokens, call services, handle dead letters."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # before nameko loads

from shared.chassis import auth  # noqa: E402


def call(args: argparse.Namespace) -> int:
    """Call a service's RPC method as a given staff member (token minted with the local key)."""
    import eventlet

    eventlet.monkey_patch()
    from nameko.exceptions import RemoteError
    from nameko.standalone.rpc import ClusterRpcProxy

    token = args.token or auth.mint_token(
        args.sub, args.role, crew_id=args.crew_id, department=args.department, area=args.area
    )
    params: list[Any] = [_value(a) for a in args.args]
    config = {"AMQP_URI": args.amqp_uri}
    with ClusterRpcProxy(config, context_data={"authorization": f"Bearer {token}"},
                         timeout=args.timeout) as rpc:
        try:
            result = getattr(getattr(rpc, args.service), args.method)(*params)
        except RemoteError as exc:
            print(f"{exc.exc_type}: {exc.value}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


def watch(args: argparse.Namespace) -> int:
    """Print every CloudEvent published to the events exchange, as it arrives (Ctrl-C stops)."""
    import kombu

    exchange = kombu.Exchange(args.exchange, type="topic", durable=True)
    queue = kombu.Queue("", exchange, routing_key=args.pattern, exclusive=True, auto_delete=True)

    def show(body: Any, message: Any) -> None:
        event = json.loads(message.body)
        print(json.dumps(event, indent=None if args.compact else 2, ensure_ascii=False),
              flush=True)
        message.ack()

    with kombu.Connection(args.amqp_uri) as conn, conn.Consumer(
            [queue], callbacks=[show], accept=["application/cloudevents+json", "json"]):
        print(f"watching {args.exchange} for {args.pattern} (Ctrl-C stops)", file=sys.stderr)
        try:
            while True:
                conn.drain_events()
        except KeyboardInterrupt:
            return 0


def _value(text: str) -> Any:
    """A JSON argument decoded, anything else as the plain string (a folio, a command name)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def dead_letters(args: argparse.Namespace) -> int:
    from amqp.exceptions import NotFound

    from shared.chassis.consumer import list_dead_letters, replay_dead_letters

    try:
        return _dead_letters(args, list_dead_letters, replay_dead_letters)
    except NotFound:
        print(f"no queue {args.queue!r} (nor {args.queue}.dead) on this broker", file=sys.stderr)
        return 2


def _dead_letters(args: argparse.Namespace, list_dead_letters: Any,
                  replay_dead_letters: Any) -> int:
    if args.replay:
        print(f"replayed {replay_dead_letters(args.amqp_uri, args.queue, limit=args.limit)}")
    else:
        print(json.dumps(list_dead_letters(args.amqp_uri, args.queue), indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mint-token"]:
        return auth.main_mint(argv[1:]) or 0
    parser = argparse.ArgumentParser(prog="expediente", description=__doc__)
    parser.add_argument("--amqp-uri", default=os.environ.get(
        "AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//"))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("mint-token", help="mint a development token (see mint-token --help)")

    p = sub.add_parser("call", help="call an RPC method: call tracking run_command assign "
                                    "QRO-2026-000001 '{\"crew_id\": \"C-01\"}'")
    p.add_argument("service")
    p.add_argument("method")
    p.add_argument("args", nargs="*", help="arguments; JSON values are decoded")
    p.add_argument("--role", action="append", default=None)
    p.add_argument("--sub", default="cli")
    p.add_argument("--crew-id")
    p.add_argument("--department")
    p.add_argument("--area", help="a billing clerk's area: predial, agua or multas")
    p.add_argument("--token", help="use this bearer token instead of minting one")
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=call)

    p = sub.add_parser("watch", help="print the CloudEvents published on RabbitMQ as they come")
    p.add_argument("--exchange", default=os.environ.get("EVENTS_EXCHANGE", "expediente.events"))
    p.add_argument("--pattern", default="mx.expediente.report.#")
    p.add_argument("--compact", action="store_true", help="one event per line")
    p.set_defaults(func=watch)

    p = sub.add_parser("dead-letters", help="list (or --replay) a consumer's parked messages")
    p.add_argument("queue", help="the consumer's queue, e.g. notifications.handle_report_event")
    p.add_argument("--replay", action="store_true")
    p.add_argument("--limit", type=int)
    p.set_defaults(func=dead_letters)

    args = parser.parse_args(argv)
    if args.command == "call":
        args.role = tuple(args.role or ("admin",))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
