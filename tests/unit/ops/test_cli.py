"""`f5-worker infra`: writes the generated template, and `--check` says whether a file matches it."""

from __future__ import annotations

from typer.testing import CliRunner

from consumer.cli import app
from consumer.ops.infra import render_yaml

runner = CliRunner()


def test_infra_writes_the_template_and_check_accepts_it(tmp_path):
    output = tmp_path / "deep" / "f5-worker.yaml"
    written = runner.invoke(app, ["infra", "--output", str(output)])
    assert written.exit_code == 0 and f"wrote {output}" in written.output
    assert output.read_text(encoding="utf-8") == render_yaml()
    checked = runner.invoke(app, ["infra", "--output", str(output), "--check"])
    assert checked.exit_code == 0 and checked.output == ""


def test_infra_check_of_a_stale_or_missing_file_exits_1_and_writes_nothing(tmp_path):
    stale = tmp_path / "stale.yaml"
    stale.write_text("# edited by hand\n", encoding="utf-8")
    result = runner.invoke(app, ["infra", "--output", str(stale), "--check"])
    assert result.exit_code == 1 and "is out of date" in result.stderr
    assert stale.read_text(encoding="utf-8") == "# edited by hand\n"
    missing = tmp_path / "missing.yaml"
    assert runner.invoke(app, ["infra", "--output", str(missing), "--check"]).exit_code == 1
    assert not missing.exists()
