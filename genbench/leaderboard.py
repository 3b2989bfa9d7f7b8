"""Leaderboards: CSV boards read as pandas DataFrames, one row per system (or per tokenizer).

Every row is `reported` (copied from a paper or README, with its source) or `measured` (a genbench results
file). The distinction is shown in every rendered format: a `kind` column everywhere, a dagger on measured
rows plus a legend in Markdown/LaTeX/HTML, a CSS class in HTML and a field in JSON.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from genbench.board_plot import fid_epochs_svg
from genbench.errors import GenbenchError
from genbench.io import atomic_write
from genbench.metrics.registry import column_spec
from genbench.metrics.spec import Column
from genbench.records import GenerationRecord, ModelProvenance
from genbench.results import load_results
from genbench.sources import read_csv, spreadsheet_safe
from genbench.validate import check_metric_value, check_text_cell

KINDS = ("reported", "measured")
TEXT_COLUMNS = ("name", "kind", "source", "model", "tokenizer", "epochs", "cfg", "notes")
METRIC_COLUMNS = ("fid", "sfid", "is", "precision", "recall", "kid", "class_acc", "rfid", "psnr", "ssim",
                  "lpips", "probe")
# Where a column goes: descriptive columns and known metrics, other columns (file order), then free text.
LEADING_COLUMNS = ("name", "kind", "model", "tokenizer", "epochs", "cfg", *METRIC_COLUMNS)
TRAILING_COLUMNS = ("source", "notes")
FORMATS = ("md", "csv", "html", "latex", "json")
MEASURED_MARK = "†"
LEGEND = (f"{MEASURED_MARK} measured: computed by genbench (a results file, or `tokenizers compare`). "
          "Unmarked rows are reported: copied from the cited source.")


def metric_direction(name: str) -> int | None:
    """-1 when lower is better, +1 when higher is better, None for columns without a direction (the column's
    declaration in genbench.metrics.registry)."""
    column = column_spec(name)
    return None if column is None else column.direction.sign


def read_board(path: str | Path) -> pd.DataFrame:
    """A board CSV as a DataFrame; text columns stay strings, every row has a valid kind."""
    path = Path(path)
    if not path.is_file():
        raise GenbenchError(f"{path}: leaderboard not found (create it with `genbench leaderboard add`)")
    return validate_board(read_csv(path, "leaderboard", TEXT_COLUMNS), path)


def validate_board(board: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    for column in ("name", "kind"):
        if column not in board.columns:
            raise GenbenchError(f"{path}: leaderboard has no '{column}' column")
    bad = board[~board["kind"].isin(KINDS)]
    if len(bad):
        raise GenbenchError(f"{path}: row '{bad['name'].iloc[0]}' has kind {bad['kind'].iloc[0]!r}; "
                            f"every row is one of {', '.join(KINDS)}")
    for column in board.columns:
        if column not in TEXT_COLUMNS and not pd.api.types.is_numeric_dtype(board[column]):
            raise GenbenchError(f"{path}: metric column '{column}' holds non-numbers")
    return board


def _ordered(columns: list[str]) -> list[str]:
    extra = [c for c in columns if c not in LEADING_COLUMNS + TRAILING_COLUMNS]  # more metrics, in file order
    return [c for c in (*LEADING_COLUMNS, *extra, *TRAILING_COLUMNS) if c in columns]


def _made_by(provenance: dict, where: str) -> tuple[str | None, dict]:
    """(what made the evaluated images, its sampling settings) when genbench made them: `eval --model`'s
    sampling manifest (provenance "sampling") or `geneval generate`'s generation record. A checkpoint is
    named "<file> (<sha256 prefix>)"."""
    if provenance.get("sampling"):
        sampling = provenance["sampling"]
        model = sampling.get("model")
        return (ModelProvenance.from_json(model, f"{where}: sampling model").label if model else None,
                sampling)
    generation = provenance.get("geneval", {}).get("generation")
    if generation:
        record = GenerationRecord.from_json(generation, f"{where}: geneval generation")
        return (record.model.label if record.model else record.world), {"cfg_scale": record.cfg_scale}
    return None, {}


def results_row(results_path: str | Path, name: str | None = None) -> dict[str, Any]:
    """One measured row from a results file: its metrics plus the provenance a reader needs."""
    document = load_results(results_path)
    provenance = document["provenance"]
    made_by, sampling = _made_by(provenance, str(results_path))
    cfg = provenance.get("cfg_scale", sampling.get("cfg_scale"))
    interval = provenance.get("guidance_interval", sampling.get("guidance_interval"))
    if cfg is not None and interval is not None:
        cfg = f"{cfg} {list(interval)}"
    row = {
        "name": name or provenance.get("model") or Path(results_path).stem,
        "kind": "measured",
        "model": provenance.get("model") or made_by,
        "tokenizer": provenance.get("tokenizer"),
        "epochs": provenance.get("epochs"),
        "cfg": "none" if cfg is None else str(cfg),
        "source": f"{Path(results_path).name} (genbench {provenance.get('genbench_version')}, "
                  f"{provenance.get('date')})",
    }
    row = {k: (None if v is None else str(v)) for k, v in row.items()}
    metrics = {key: check_metric_value(str(results_path), key, value, TEXT_COLUMNS)
               for key, value in document["metrics"].items()}
    return {**row, **metrics}


def append_row(board_path: str | Path, row: dict[str, Any]) -> None:
    """Append one row. A lock file serialises writers and the board is replaced atomically, so several
    processes appending at once lose nothing and readers never see a half-written file."""
    board_path = Path(board_path)
    for column in TEXT_COLUMNS:
        if isinstance(row.get(column), str):
            check_text_cell(f"row {str(row.get('name'))[:40]!r} for {board_path}", column, row[column])
    if board_path.is_symlink():  # lock and replace the target, so the link and its other users see the row
        board_path = Path(os.path.realpath(board_path))
    if board_path.exists():
        read_board(board_path)  # a broken board is refused before its lock file is created
    board_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{board_path}.lock"):
        board = read_board(board_path) if board_path.exists() else pd.DataFrame(columns=["name", "kind"])
        new = pd.DataFrame([row]).astype({c: "string" for c in TEXT_COLUMNS if c in row})
        board = pd.concat([board, new], ignore_index=True) if len(board) else new
        board = board[_ordered(list(board.columns))]
        with atomic_write(board_path) as tmp:
            to_csv(board, tmp)


def to_csv(board: pd.DataFrame, path: str | Path | None = None) -> str | None:
    """The board as CSV (to `path`, else returned), text cells made spreadsheet-safe."""
    safe = board.copy()
    for column in (c for c in TEXT_COLUMNS if c in safe.columns):
        safe[column] = safe[column].map(spreadsheet_safe, na_action="ignore")
    return safe.to_csv(path, index=False)


def sort_board(board: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Best first by `by` (lower-is-better metrics ascending), rows without a value last."""
    if by is None:
        return board
    if by not in board.columns:
        raise GenbenchError(f"--sort {by}: no such column; the board has {', '.join(board.columns)}")
    return board.sort_values(by, ascending=metric_direction(by) != 1, na_position="last", kind="stable")


def _cell(column: str, value: Any) -> str:
    """Display text of one cell: metrics rounded per metric, missing values as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (int, float)) and column not in TEXT_COLUMNS:
        return f"{value:.{(column_spec(column) or Column(column)).decimals}f}"
    return str(value)


def display_rows(board: pd.DataFrame) -> list[list[str]]:
    """Cells as text, measured names carrying the dagger."""
    rows = []
    for record in board.to_dict("records"):
        cells = [_cell(c, record[c]) for c in board.columns]
        if record["kind"] == "measured":
            cells[list(board.columns).index("name")] += MEASURED_MARK
        rows.append(cells)
    return rows


def to_markdown(board: pd.DataFrame) -> str:
    header = "| " + " | ".join(board.columns) + " |"
    rule = "|" + "|".join("---:" if c not in TEXT_COLUMNS else "---" for c in board.columns) + "|"
    body = ["| " + " | ".join(" ".join(cell.splitlines()).replace("|", "\\|") for cell in row) + " |"
            for row in display_rows(board)]
    return "\n".join([header, rule, *body, "", LEGEND]) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "–": "--", MEASURED_MARK: r"$^\dagger$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(board: pd.DataFrame, caption: str = "ImageNet results") -> str:
    """A booktabs table ready to paste (needs \\usepackage{booktabs})."""
    align = "".join("r" if c not in TEXT_COLUMNS else "l" for c in board.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(_latex_escape(c) for c in board.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(cell) for cell in row) + r" \\" for row in display_rows(board)]
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{_latex_escape(caption)} {_latex_escape(LEGEND)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_json(board: pd.DataFrame) -> str:
    records = json.loads(board.to_json(orient="records"))
    return json.dumps({"legend": LEGEND, "rows": records}, indent=2, ensure_ascii=False) + "\n"


_HTML_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;font-size:14px}
th,td{padding:4px 10px;border-bottom:1px solid #ddd;white-space:nowrap}
th{cursor:pointer;background:#f3f3f3;position:sticky;top:0}
th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.measured{background:#e8f4ea;font-weight:600}
tr.reported td.name{font-style:italic}
.legend{margin-top:1rem;font-size:13px}
.legend span{padding:2px 6px}
"""

# Click a header to sort by it; click again to reverse. Cells carry their raw value in data-v.
_HTML_SCRIPT = """
document.querySelectorAll('th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0];
    var asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    var rows = Array.from(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      if (x === '') return 1; if (y === '') return -1;
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
document.getElementById('count').textContent = document.querySelectorAll('tbody tr').length;
// A link ending in #sort=COLUMN opens the page sorted by that column (ascending).
var sortBy = decodeURIComponent(location.hash.replace(/^#sort=/, ''));
document.querySelectorAll('th').forEach(function(th){ if (th.textContent === sortBy) th.click(); });
"""


def to_html(board: pd.DataFrame, title: str = "genbench leaderboard") -> str:
    """One self-contained page: the FID-vs-epochs plot (inline SVG, when the board has epochs), inline CSS
    and a small inline script for click-to-sort."""
    columns = list(board.columns)
    head = "".join(f'<th class="{"text" if c in TEXT_COLUMNS else "num"}">{html.escape(c)}</th>'
                   for c in columns)
    body = []
    for record, cells in zip(board.to_dict("records"), display_rows(board), strict=True):
        tds = []
        for column, cell in zip(columns, cells, strict=True):
            raw = "" if cell == "–" else str(record[column])
            kind = "text" if column in TEXT_COLUMNS else "num"
            tds.append(f'<td class="{kind} {html.escape(column)}" data-v="{html.escape(raw)}">'
                       f"{html.escape(cell)}</td>")
        body.append(f'<tr class="{record["kind"]}">{"".join(tds)}</tr>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_HTML_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
{fid_epochs_svg(board)}
<p><span id="count"></span> rows; click a column header to sort.</p>
<table><thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<p class="legend"><span style="background:#e8f4ea;font-weight:600">{MEASURED_MARK} measured</span>
computed by genbench (a results file, or <code>tokenizers compare</code>);
<span style="font-style:italic">reported</span> rows are copied from the cited source.</p>
<script>{_HTML_SCRIPT}</script>
</body></html>
"""


def render(board: pd.DataFrame, fmt: str) -> str:
    """The board as text in one of FORMATS, columns in the canonical order."""
    board = board[_ordered(list(board.columns))]
    if fmt == "csv":
        return to_csv(board)
    renderers = {"md": to_markdown, "latex": to_latex, "json": to_json, "html": to_html}
    if fmt not in renderers:
        raise GenbenchError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    return renderers[fmt](board)
