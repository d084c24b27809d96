"""Every command line follows the same conventions: -h, --version, defaults in --help; install lines that work."""

import re

import pytest
from click.testing import CliRunner
from conftest import ROOT

PACKAGES = ("fb-heuristic", "fb-profile", "fb-search", "fb-deploy")


def _main(package: str):
    module = __import__(f"{package.replace('-', '_')}._cli", fromlist=["main"])
    return module.main


@pytest.mark.parametrize("package", PACKAGES)
def test_short_help_and_version(package):
    main = _main(package)

    def run(*args):
        return CliRunner().invoke(main, list(args), prog_name=package)

    long, short = run("--help"), run("-h")
    assert short.exit_code == 0 and short.output == long.output and f"Usage: {package} " in short.output
    first = next(iter(main.commands))
    sub = run(first, "-h")
    assert sub.exit_code == 0 and f"Usage: {package} {first}" in sub.output
    # the program's own name whatever the caller's argv[0] (click otherwise keeps the first name it saw)
    for version in (CliRunner().invoke(main, ["--version"], prog_name="main"), run("--version")):
        assert version.exit_code == 0 and version.output.strip() == f"{package}, version 0.1.0"


@pytest.mark.parametrize("package", PACKAGES)
def test_help_shows_every_default(package):
    import click

    main = _main(package)
    for name, command in main.commands.items():
        # click wraps long defaults anywhere, even inside a word: compare without any whitespace
        text = "".join(CliRunner().invoke(main, [name, "--help"]).output.split())
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and param.required is False:
                default = param.default
                if default is not None and "UNSET" not in repr(default) and default != ():
                    shown = f"[default: {default}" if not isinstance(default, bool) else "[default:"
                    assert "".join(shown.split()) in text, (
                        f"{package} {name} {param.opts[0]}: default {default!r} not in --help"
                    )


@pytest.mark.parametrize("package", ["fb-profile", "fb-search"])
def test_no_progress_on_every_cli_with_long_work(package):
    main = _main(package)
    for name, command in main.commands.items():
        if name in ("sweep", "train-float", "search", "finetune"):
            assert "--no-progress" in [o for p in command.params for o in p.opts], name


def test_readme_install_lines_install_fb_schema_in_the_same_call():
    bad = []
    for readme in [ROOT / "README.md", *sorted(ROOT.glob("packages/*/README.md"))]:
        for number, line in enumerate(readme.read_text().splitlines(), 1):
            for command in re.findall(r"pip install [^`|]*", line):
                sibling = [p for p in re.findall(r"packages/(fb-[a-z]+)", command) if p != "fb-schema"]
                if sibling and "packages/fb-schema" not in command:
                    bad.append(f"{readme.relative_to(ROOT)}:{number}: {command.strip()}")
    assert not bad, "install lines that cannot resolve the fb-schema pin: " + "; ".join(bad)
