"""`baton`: a command-line client of any Baton (or Kestra) server, over the REST API.

A pure HTTP client: it imports the standard library and `flows.cli` only (no Django), so it runs
anywhere `pip install baton` does, a CI runner included.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from flows.cli import commands
from flows.cli.client import ApiError, ConnectionFailed
from flows.cli.commands import EXIT_FAILED, EXIT_USAGE, Console
from flows.cli.config import DEFAULT_TENANT, ConfigError

Handler = Callable[[argparse.Namespace, Console], int]

EPILOG = """\
connection: flags win over BATON_SERVER, BATON_TENANT, BATON_TOKEN, BATON_USERNAME and
BATON_PASSWORD, which win over the current context of the config file (BATON_CONFIG, default
~/.config/baton/config.json).
"""


def _connection_flags() -> argparse.ArgumentParser:
    # SUPPRESS: a flag not given leaves no attribute, so it never hides the environment or context.
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("connection")
    group.add_argument("--context", default=argparse.SUPPRESS, help="context of the config file to use")
    group.add_argument("--server", default=argparse.SUPPRESS, help="server URL, e.g. http://localhost:8080")
    group.add_argument("--tenant", default=argparse.SUPPRESS, help=f"tenant (default {DEFAULT_TENANT})")
    group.add_argument("--token", default=argparse.SUPPRESS, help="API token (sent as a Bearer token)")
    group.add_argument("--username", default=argparse.SUPPRESS, help="user for HTTP Basic")
    group.add_argument("--password", default=argparse.SUPPRESS, help="password for HTTP Basic")
    return flags


def _output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="baton",
        description="Command-line client of a Baton (or Kestra) server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    connection = _connection_flags()

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help_text: str,
        connects: bool = True,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(
            name, help=help_text, description=help_text, parents=[connection] if connects else []
        )
        sub.set_defaults(handler=handler)
        return sub

    # config
    config = groups.add_parser("config", help="contexts: which server, tenant and credentials to use")
    config_commands = config.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = command(config_commands, "add", commands.config_add, "add or replace a context", connects=False)
    add.add_argument("name")
    add.add_argument("--server", required=True, help="server URL, e.g. https://baton.example.com")
    add.add_argument("--tenant", default=DEFAULT_TENANT, help=f"tenant (default {DEFAULT_TENANT})")
    auth = add.add_mutually_exclusive_group()
    auth.add_argument("--token", help="API token")
    auth.add_argument("--username", help="user for HTTP Basic (with --password)")
    add.add_argument("--password", help="password for HTTP Basic")
    add.add_argument("--use", action="store_true", help="make it the current context")
    use = command(
        config_commands, "use", commands.config_use, "make a context the current one", connects=False
    )
    use.add_argument("name")
    remove = command(config_commands, "remove", commands.config_remove, "remove a context", connects=False)
    remove.add_argument("name")
    listing = command(
        config_commands,
        "list",
        commands.config_list,
        "list the contexts (never their secrets)",
        connects=False,
    )
    _output_flag(listing)

    # flows
    flows = groups.add_parser("flows", help="list, get, validate and deploy flows")
    flow_commands = flows.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = command(flow_commands, "list", commands.flows_list, "list flows (all pages)")
    listing.add_argument("--namespace", help="only this namespace and its children")
    _output_flag(listing)
    get = command(flow_commands, "get", commands.flows_get, "print a flow's YAML source")
    get.add_argument("namespace")
    get.add_argument("id")
    get.add_argument("--revision", type=int, help="an older revision")
    _output_flag(get)
    validate = command(
        flow_commands,
        "validate",
        commands.flows_validate,
        "validate the flow files of a folder on the server",
    )
    validate.add_argument(
        "directory", help="folder of *.yml / *.yaml flow files (searched recursively), or a file"
    )
    _output_flag(validate)
    deploy = command(flow_commands, "deploy", commands.flows_deploy, "create or update the flows of a folder")
    deploy.add_argument(
        "directory", help="folder of *.yml / *.yaml flow files (searched recursively), or a file"
    )
    deploy.add_argument("--namespace", required=True, help="the namespace deployed to (its children too)")
    deploy.add_argument(
        "--override", action="store_true", help="replace flows that exist with another source"
    )
    deploy.add_argument("--fail-fast", action="store_true", help="stop at the first file that fails")
    _output_flag(deploy)

    # executions
    executions = groups.add_parser("executions", help="run flows")
    execution_commands = executions.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = command(execution_commands, "run", commands.executions_run, "start an execution of a flow")
    run.add_argument("namespace")
    run.add_argument("flow")
    run.add_argument(
        "--input", action="append", default=[], metavar="KEY=VALUE", help="an input; KEY=@FILE uploads a file"
    )
    run.add_argument("--label", action="append", default=[], metavar="KEY:VALUE", help="an execution label")
    run.add_argument("--wait", action="store_true", help="wait for the end; exit 1 unless SUCCESS or WARNING")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop waiting after this")
    _output_flag(run)

    # namespaces
    namespaces = groups.add_parser("namespaces", help="list namespaces")
    namespace_commands = namespaces.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = command(namespace_commands, "list", commands.namespaces_list, "list namespaces")
    _output_flag(listing)

    # namespace files
    nsfiles = groups.add_parser("nsfiles", help="namespace files: list, get, upload, delete")
    nsfile_commands = nsfiles.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = command(nsfile_commands, "list", commands.nsfiles_list, "list a folder of namespace files")
    listing.add_argument("--namespace", required=True)
    listing.add_argument("--path", default="/", help="folder (default /)")
    listing.add_argument("--recursive", "-r", action="store_true", help="and its subfolders")
    _output_flag(listing)
    get = command(nsfile_commands, "get", commands.nsfiles_get, "print (or save) a namespace file")
    get.add_argument("--namespace", required=True)
    get.add_argument("--path", required=True, help="e.g. /scripts/main.py")
    get.add_argument("--to", metavar="FILE", help="write it to FILE instead of the standard output")
    upload = command(
        nsfile_commands, "upload", commands.nsfiles_upload, "upload a file, or a folder recursively"
    )
    upload.add_argument("local", help="a file, or a folder (hidden files and folders are left out)")
    upload.add_argument("--namespace", required=True)
    upload.add_argument("--path", default="/", help="the remote folder to upload into (default /)")
    upload.add_argument("--override", action="store_true", help="replace files that exist")
    upload.add_argument("--fail-fast", action="store_true", help="stop at the first file that fails")
    _output_flag(upload)
    delete = command(nsfile_commands, "delete", commands.nsfiles_delete, "delete a namespace file")
    delete.add_argument("--namespace", required=True)
    delete.add_argument("--path", required=True)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("baton")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    console = Console()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors: argparse has printed them
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    try:
        return handler(args, console)
    except ApiError as error:
        console.warn(f"baton: error: {f'{error.status} {error.reason}'.strip()}: {error.message}")
        for detail in error.errors:
            text = str(detail.get("message") or "")
            if text and text != error.message:
                line = f" (line {detail['line']})" if detail.get("line") and "(line" not in text else ""
                console.warn(f"  {text}{line}")
        return EXIT_FAILED
    except (ConnectionFailed, ConfigError) as error:
        console.warn(f"baton: error: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.warn("baton: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
