"""Command line: ``groupcov fit | predict | compare | demo``.

Exit status: 0 on success, 2 for a usage or input error that groupcov recognized (one
line on stderr, no traceback), 1 for an unexpected failure (``--traceback``, before or
after the command name, shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["FIT_OUTPUTS", "InputError", "build_parser", "main", "read_table"]

FIT_OUTPUTS = (
    "posterior.nc",
    "summary.csv",
    "covariances.csv",
    "correlations.csv",
    "ellipses.png",
    "report.html",
)
"""Files written by ``groupcov fit`` into ``--out``."""

_POOLING = ("hierarchical", "unpooled", "pooled")
_SAMPLERS = ("numpyro", "nutpie", "pymc")
_ALGORITHMS = ("nuts", "jittered")  # groupcov.inference.jax_backend.ALGORITHMS


class InputError(ValueError):
    """A command-line input that cannot be used (a path, a format, a value)."""


def _input_errors() -> tuple[type[BaseException], ...]:
    from groupcov.data import DataError

    return (InputError, DataError, OSError, ImportError)


class PlotWarning(UserWarning):
    """A plot or the report of a finished fit could not be drawn."""


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line: ``groupcov fit: error: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _split_names(values: Sequence[str] | None, columns: Sequence[str] = ()) -> list[str] | None:
    """``--features a b``, ``--features a,b``: one flat list of names.

    An argument that is exactly one of ``columns`` is kept whole (a column may be named
    ``len, cm``); the others are split on commas.

    Examples
    --------
    >>> _split_names(["x0,x1", "x2"])
    ['x0', 'x1', 'x2']
    >>> _split_names(["len, cm", "y,z"], columns=["g", "len, cm", "y", "z"])
    ['len, cm', 'y', 'z']
    """
    if values is None:
        return None
    names = [[v] if v in columns else [part.strip() for part in v.split(",")] for v in values]
    return [n for parts in names for n in parts if n]


def _column_names(path: str | Path) -> list[str]:
    """Column names of a CSV or Parquet file (or glob) as ``fit`` reads them, without
    reading its rows."""
    import duckdb

    from groupcov.data.duckdb_engine import open_path

    with duckdb.connect() as con:
        relation, _, _, names = open_path(str(_data_file(path)), con)
        return list(names) if names is not None else list(relation.columns)


def _feature_names(path: str | Path, values: Sequence[str] | None) -> list[str] | None:
    """The ``--features`` of a data file: see :func:`_split_names` (the file's column
    names are read only where an argument has a comma or surrounding spaces)."""
    if values is None or all("," not in v and v == v.strip() for v in values):
        return _split_names(values)
    return _split_names(values, _column_names(path))


def _data_file(path: str | Path) -> Path:
    """``path`` unless it names a single file that does not exist (globs pass)."""
    path = Path(path)
    if not any(ch in str(path) for ch in "*?[") and not path.exists():
        raise InputError(f"data file '{path}' not found")
    if path.is_dir():
        raise InputError(f"data path '{path}' is a directory; pass a CSV or Parquet file")
    return path


def reduce_file(path: str | Path, group: str, features: Sequence[str] | None):
    """Per-group statistics of a CSV or Parquet file (or glob), without loading it.

    Every command reduces its data through this function (DuckDB reads the file).

    Parameters
    ----------
    path : str or pathlib.Path
        CSV (``.csv``, ``.tsv``, optionally compressed) or Parquet file, or a glob.
    group : str
        Group column.
    features : sequence of str or None
        Feature columns; ``None``: every numeric column except ``group``.

    Returns
    -------
    SufficientStats

    Raises
    ------
    InputError, groupcov.DataError
        A missing file, or a table that cannot be used (the message says why).
    """
    from groupcov.data import reduce

    path = _data_file(path)
    return reduce(str(path), group=group, features=features)


def read_table(path: str | Path, columns: Sequence[str] | None = None,
               max_rows: int | None = None, numbers: Sequence[str] = ()):
    """Rows of a CSV or Parquet file (or glob) as a pandas DataFrame.

    The file is read exactly as ``fit`` reads it (:func:`groupcov.data.duckdb_engine.
    read_rows`): the same delimiter detection, column types, group labels and
    missing-value markers (``NA``, ``N/A``, ``NULL``...), so every command sees the
    same table.

    Parameters
    ----------
    path : str or pathlib.Path
        CSV (``.csv``, ``.tsv``, optionally compressed) or Parquet file, or a glob.
    columns : sequence of str, optional
        Columns to keep (default all).
    max_rows : int, optional
        Keep a reproducible random sample of at most this many rows.
    numbers : sequence of str
        Columns meant to hold numbers (the features), read as numbers where they do
        though DuckDB took them for text or dates (``inf``).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError, groupcov.DataError
        If the file does not exist, cannot be read or lacks one of ``columns``.

    Examples
    --------
    >>> read_table("no/such/file.csv")
    Traceback (most recent call last):
    ...
    groupcov.cli.InputError: data file 'no/such/file.csv' not found
    """
    from groupcov.data.duckdb_engine import read_rows

    path = _data_file(path)
    return read_rows(str(path), columns=columns, max_rows=max_rows, numbers=numbers)


def _plot_rows(path: str | Path, group: str, features: Sequence[str], limit: int = 20_000):
    """A reproducible sample of at most ``limit`` rows to draw under the ellipses.

    ``None`` (plots without points) when the rows cannot be read.
    """
    from groupcov.data import DataError

    try:
        return read_table(path, [group, *features], max_rows=limit, numbers=features)
    except (DataError, InputError) as err:
        warnings.warn(f"the plots show no data points: {_first_line(err)}", PlotWarning,
                      stacklevel=2)
        return None


def _first_line(err: BaseException) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


class _Progress:
    """Stages of long work on stderr: a live bar on a terminal, one line each otherwise."""

    def __init__(self, total: int, enabled: bool | None = None, quiet: bool = False):
        self.total = total
        self.quiet = quiet
        self.live = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self.started = time.perf_counter()
        self._bar = None
        self._task = None
        if self.live and not quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._task = self._bar.add_task("starting", total=total)
            self._bar.start()

    @contextlib.contextmanager
    def stage(self, text: str, own_bar: bool = False) -> Iterator[None]:
        """Run one stage; ``own_bar``: the work draws its own progress bar."""
        if self._bar is not None:
            self._bar.update(self._task, description=text)
            if own_bar:
                self._bar.stop()
        elif not self.quiet:
            print(f"groupcov: [{self.done + 1}/{self.total}] {text} ...", file=sys.stderr,
                  flush=True)
        yield
        self.done += 1
        if self._bar is not None:
            if own_bar:
                self._bar.start()
            self._bar.update(self._task, completed=self.done)
        elif not self.quiet and self.done == self.total:
            print(f"groupcov: done in {time.perf_counter() - self.started:.1f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


#: Python spellings in library messages and what the command line calls them.
_FLAG_FORMS = (
    ("a higher target_accept (fit(target_accept=0.99); --target-accept 0.99 on the command "
     "line)", "a higher --target-accept (e.g. --target-accept 0.99)"),
    ("run more draws or chains and check result.diagnostics()",
     "raise --draws or --chains (a fit's diagnostics are in its report.html)"),
    ("run more draws (and check result.diagnostics())",
     "raise --draws (a fit's diagnostics are in its report.html)"),
    ("; run more draws", "; raise --draws"),
    ("pass features=[...] with at least one name", "pass --features with at least one column"),
    ("pass features=[...]", "pass --features COL [COL ...]"),
    ("listed more than once in features=", "listed more than once in --features"),
    ("leave it out of features=", "leave it out of --features"),
    ("(covariance='pooled')", "(--covariance pooled)"),
    ("model with covariance='hierarchical'", "model with --covariance hierarchical"),
    ("model with covariance='unpooled'", "model with --covariance unpooled"),
    ("model with covariance='pooled'", "model with --covariance pooled"),
)


def flag_form(message: str) -> str:
    """A library message with its Python spellings replaced by the command-line options.

    Examples
    --------
    >>> flag_form("column 'g' has no numeric feature columns besides 'g'; pass features=[...]")
    "column 'g' has no numeric feature columns besides 'g'; pass --features COL [COL ...]"
    """
    for python, flag in _FLAG_FORMS:
        message = message.replace(python, flag)
    return message


def _warn_line(message: warnings.WarningMessage) -> None:
    text = flag_form(_first_line(Exception(str(message.message))))
    print(f"groupcov: warning: {text}", file=sys.stderr)


@contextlib.contextmanager
def _report_warnings() -> Iterator[None]:
    """Show the library's warnings as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        yield
    seen = set()
    for w in caught:
        key = str(w.message)
        if key not in seen and type(w.message).__module__.startswith("groupcov"):
            seen.add(key)
            _warn_line(w)


def _out_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file; pass a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create --out directory '{out}': {err.strerror}") from None
    return out


def _diagnostics_line(diag) -> str:
    """``max R-hat ..., min bulk ESS ..., ... (C chains x D draws)`` for the terminal."""
    chains = f"{diag.chains} chain{'s' if diag.chains != 1 else ''}"
    r_hat = (f"max R-hat {diag.max_r_hat:.3f}" if diag.chains > 1
             else "R-hat needs 2 or more chains (--chains)")
    return (
        f"{r_hat}, min bulk ESS {diag.min_ess_bulk:.0f}, min tail ESS "
        f"{diag.min_ess_tail:.0f}, {diag.divergences} divergences ({chains} x "
        f"{diag.draws} draws"
    ) + ")"


def _check_pooling(stats, group: str, candidates: Sequence[tuple[str, str]],
                   option: str = "--means/--covariance") -> None:
    """A hierarchical choice needs two groups: say so in flags before any sampling."""
    if stats.n_groups >= 2:
        return
    bad = [c for c in candidates if "hierarchical" in c]
    if not bad:
        return
    if option == "--candidates":
        fix = "pass --candidates pooled unpooled (or other choices without hierarchical)"
    else:
        fix = "pass --means pooled --covariance pooled (or unpooled)"
    raise InputError(
        f"hierarchical pooling ({option}, default hierarchical) needs at least two groups, "
        f"but column '{group}' of the data has {stats.n_groups} "
        f"({', '.join(str(g) for g in stats.groups)}); {fix}"
    )


def _out_file(path: str | None, option: str, suffixes: Sequence[str] = ()) -> Path | None:
    """Check an output file before any work: its folder exists and can be written."""
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{option} '{out}' is a directory; pass a file name")
    folder = out.parent
    if not folder.is_dir():
        raise InputError(f"directory '{folder}' of {option} '{out}' does not exist; "
                         "create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists()
                                                    and not os.access(out, os.W_OK)):
        raise InputError(f"cannot write {option} '{out}': permission denied")
    if suffixes and out.suffix.lower().lstrip(".") not in suffixes:
        raise InputError(
            f"{option} '{out}': unknown file type '{out.suffix}'; end the name with one of "
            f"{', '.join('.' + x for x in suffixes)}"
        )
    return out


def _fit_model(args, stats, progress: _Progress, means: str, covariance: str,
               label: str = "", group: str = "group"):
    from groupcov import GroupCovModel

    with progress.stage(f"building the {label or means + '/' + covariance} model"):
        with _report_warnings():
            model = GroupCovModel(stats, group=group, means=means, covariance=covariance)
    sampler = args.sampler or "numpyro"
    own_bar = progress.live and not progress.quiet and sampler != "numpyro"
    with progress.stage(
        f"sampling ({sampler}, {args.chains} chains x {args.draws} draws after "
        f"{args.tune} warm-up)",
        own_bar=own_bar,
    ):
        with _report_warnings():
            result = model.fit(progressbar=own_bar, **_sampling_kwargs(args))
    return result


def _matrix_table(result, name: str):
    """Posterior mean matrices of every group, stacked: columns group, feature, <features>."""
    import pandas as pd

    mean = result.idata.posterior[name].mean(("chain", "draw"))
    feats = result.features
    frames = [
        pd.DataFrame(mean.sel(group=g).values, columns=feats).assign(
            group=g, feature=feats
        )[["group", "feature", *feats]]
        for g in result.groups
    ]
    return pd.concat(frames, ignore_index=True)


def _cells(values: Sequence[float], digits: int = 4, most: int = 10) -> list[str]:
    """``values`` with the fewest significant digits (at least ``digits``) that keep
    different values apart: means of 1000012 and 1000034 do not both print as 1e+06."""
    distinct = len(set(values))
    texts = [f"{v:.{digits}g}" for v in values]
    for d in range(digits + 1, most + 1):
        if len(set(texts)) == distinct:
            break
        texts = [f"{v:.{d}g}" for v in values]
    return texts


#: The per-group table keeps one row per group up to this width, then turns to one row
#: per parameter (a column per group); correlations beyond this many pairs go to the CSV.
TABLE_WIDTH = 120
TABLE_MAX_PAIRS = 15


#: Group names longer than this are shortened in printed tables.
LABEL_WIDTH = 24


def short_labels(labels: list[str], width: int = LABEL_WIDTH) -> list[str]:
    """Labels of at most ``width`` characters for a printed table: a longer one keeps
    its start and end around ``...``, unless that makes two labels alike (then all are
    kept whole).

    Examples
    --------
    >>> short_labels(["a", "Southern Appalachian Mountains region"], 20)
    ['a', 'Southern ...s region']
    """
    keep = width - 3
    head = (keep + 1) // 2
    shortened = [s if len(s) <= width else f"{s[:head]}...{s[len(s) - (keep - head):]}"
                 for s in labels]
    return shortened if len(set(shortened)) == len(set(labels)) else list(labels)


def group_table(result) -> str:
    """Compact per-group text table: rows, posterior means of means, sds and correlations.

    One row per group while that fits in :data:`TABLE_WIDTH` characters; otherwise one
    row per parameter with a column per group (up to 8 groups; more groups keep one row
    per group with means and sds only). Correlations are listed up to
    :data:`TABLE_MAX_PAIRS` pairs; ``correlations.csv`` holds them all.
    """
    post = result.idata.posterior
    feats = result.features
    mu = post["mu"].mean(("chain", "draw")).values
    sd = post["sigma"].mean(("chain", "draw")).values
    corr = post["corr"].mean(("chain", "draw")).values
    n = result.stats.rows_per_group()
    labels = short_labels([str(g) for g in result.groups])
    pairs = [(a, b) for a in range(len(feats)) for b in range(a + 1, len(feats))]
    cols = [f"mean[{f}]" for f in feats] + [f"sd[{f}]" for f in feats]
    vals = [list(mu[i]) + list(sd[i]) for i in range(len(labels))]
    note = ""
    if len(pairs) <= TABLE_MAX_PAIRS:
        cols += [f"corr[{feats[a]},{feats[b]}]" for a, b in pairs]
        vals = [v + [corr[i, a, b] for a, b in pairs] for i, v in enumerate(vals)]
    else:
        note = f"\n({len(pairs)} correlations per group: see correlations.csv)"
    if labels != [str(g) for g in result.groups]:
        note += "\n(long group names shortened with '...'; summary.csv has them whole)"
    gw = max(5, *(len(s) for s in labels))
    by_column = [_cells([v[j] for v in vals]) for j in range(len(cols))]
    widths = [max(9, len(c), *(len(t) for t in texts)) for c, texts in zip(
        cols, by_column, strict=True)]
    wide = gw + 9 + sum(w + 1 for w in widths)
    if wide > TABLE_WIDTH and len(labels) <= 8:
        pw = max(9, *(len(c) for c in cols))
        lw = [max(10, len(g), *(len(texts[i]) for texts in by_column))
              for i, g in enumerate(labels)]
        lines = [f"{'':<{pw}} " + " ".join(f"{g:>{w}}" for g, w in zip(labels, lw, strict=True))]
        lines.append("-" * len(lines[0]))
        lines.append(f"{'rows':<{pw}} " + " ".join(
            f"{int(k):>{w}}" for k, w in zip(n, lw, strict=True)))
        for c, texts in zip(cols, by_column, strict=True):
            lines.append(f"{c:<{pw}} " + " ".join(
                f"{t:>{w}}" for t, w in zip(texts, lw, strict=True)))
        return "\n".join(lines) + note
    lines = [f"{'group':<{gw}} {'rows':>7} " + " ".join(
        f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    for i, g in enumerate(labels):
        cells = " ".join(f"{texts[i]:>{w}}" for texts, w in zip(by_column, widths, strict=True))
        lines.append(f"{g:<{gw}} {int(n[i]):>7} {cells}")
    return "\n".join(lines) + note


def _fit(args: argparse.Namespace) -> int:
    _data_file(args.data)
    features = _feature_names(args.data, args.features)
    out = _out_dir(args.out)
    staging = _staging_dir(out)
    progress = _Progress(5, enabled=args.progress, quiet=args.quiet)
    try:
        with progress.stage(f"reducing {args.data} to per-group statistics"):
            with _report_warnings():
                stats = reduce_file(args.data, args.group, features)
        _check_pooling(stats, args.group, [(args.means, args.covariance)])
        result = _fit_model(args, stats, progress, args.means, args.covariance,
                            group=args.group)
        with progress.stage(f"writing posterior and tables to {out}"):
            result.save(staging / "posterior.nc")
            result.summary().to_csv(staging / "summary.csv", index=False)
            _matrix_table(result, "cov").to_csv(staging / "covariances.csv", index=False)
            _matrix_table(result, "corr").to_csv(staging / "correlations.csv", index=False)
        with progress.stage("drawing plots and the report"), _report_warnings():
            _write_figures(result, args.data, args.group, staging)
        written = _publish(staging, out)
    finally:
        progress.close()
        shutil.rmtree(staging, ignore_errors=True)
    diag = result.diagnostics()
    print(group_table(result))
    print("\n" + _diagnostics_line(diag)
          + ("" if diag.ok else "  <- check the diagnostics in report.html"))
    print(f"wrote {', '.join(written)} to {out}")
    return 0


def _staging_dir(out: Path) -> Path:
    """A fresh hidden directory inside ``out`` for the files of this fit."""
    try:
        return Path(tempfile.mkdtemp(prefix=".groupcov-", dir=out))
    except OSError as err:
        raise InputError(f"cannot write into --out directory '{out}': {err.strerror}") from None


def _publish(staging: Path, out: Path) -> list[str]:
    """Replace every output of an earlier fit in ``out`` by this fit's files.

    Returns the names of the files this fit wrote (a figure that could not be drawn
    is missing, and so is the earlier fit's version of it).
    """
    for name in FIT_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    written = []
    for name in FIT_OUTPUTS:
        if (staging / name).exists():
            os.replace(staging / name, out / name)
            written.append(name)
    return written


def _write_figures(result, data_path: str, group: str, out: Path) -> None:
    """``ellipses.png`` and ``report.html``; a failure is a :class:`PlotWarning`.

    The fit is finished when this runs: a plot that cannot be drawn must not lose it.
    """
    from groupcov import plots
    from groupcov.report import write_report

    source = Path(data_path).name
    data = _plot_rows(data_path, group, result.features)
    groups = result.groups[:40]
    try:
        if len(result.features) == 2:
            fig = plots.ellipses(result, groups=groups, data=data, group_column=group)
        else:
            features = result.features[: plots.PAIRS_MAX_FEATURES]  # the first ones
            fig = plots.pairs(result, features, groups=groups, data=data, group_column=group)
        fig.savefig(out / "ellipses.png", dpi=100)
    except Exception as err:  # any plotting failure
        _plot_failed("ellipses.png", err)
    title = f"groupcov: {source}"
    try:
        write_report(result, out / "report.html", data=data, group_column=group,
                     source=source, title=title)
        return
    except Exception as err:
        if data is None:
            _plot_failed("report.html", err)
            return
        first = err
    try:  # the data's plots may be what failed: the report without them
        write_report(result, out / "report.html", source=source, title=title)
        _plot_failed("the data in report.html", first)
    except Exception as err:
        _plot_failed("report.html", err)


def _plot_failed(what: str, err: BaseException) -> None:
    warnings.warn(
        f"could not draw {what} ({type(err).__name__}: {_first_line(err)}); the posterior "
        "and tables are complete (groupcov.plots and groupcov.report draw it from "
        "posterior.nc)", PlotWarning, stacklevel=2,
    )


def _load_fit(path: str):
    from groupcov.result import GroupCovResult

    p = Path(path)
    if p.is_dir():
        p = p / "posterior.nc"
    if not p.exists():
        raise InputError(f"fit '{path}' not found: pass the --out directory of "
                         "`groupcov fit` or its posterior.nc")
    try:
        return GroupCovResult.load(p)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"'{p}' is not a groupcov fit: {_first_line(err)}") from None


def _write_table(df, out: Path | None) -> None:
    """``df`` as CSV to ``out`` (checked by :func:`_out_file` before the work) or stdout."""
    if out is None:
        df.to_csv(sys.stdout, index=False)
        return
    path = Path(out)
    df.to_csv(path, index=False)
    print(f"wrote {len(df)} rows to {path}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> int:
    out = _out_file(args.out, "--out")
    result = _load_fit(args.fit)
    if args.classify is not None:
        table = _classify_rows(result, args.classify)
    else:
        group, new = _predict_group(result, args.group, args.new_group)
        table = _predictive_rows(result, group, args.n, args.seed, new_group=new)
    _write_table(table, out)
    return 0


def _check_new_group(result) -> None:
    """A new group needs pooled or hierarchical means and covariance."""
    spec = getattr(result, "spec", {})
    unpooled = [f"--{k} unpooled" for k in ("means", "covariance") if spec.get(k) == "unpooled"]
    if unpooled:
        raise InputError(
            f"--new-group: this fit was made with {' and '.join(unpooled)}, which says nothing "
            "about a new group; refit with hierarchical or pooled instead, or pass --group "
            "with one of the fit's groups"
        )


def _predict_group(result, group: str | None, new_group: bool) -> tuple[str | None, bool]:
    """``(label, new)`` from ``--group G`` / ``--new-group``: unknown labels are an error.

    ``--group new`` asks for a new group too, unless the fit has a group called ``new``.
    """
    labels = [str(g) for g in result.groups]
    if new_group or (group == "new" and group not in labels):
        _check_new_group(result)
        return None, True
    if group in labels:
        return group, False
    from groupcov.result import unknown_group_message

    raise InputError(unknown_group_message(
        group, result.groups, "; pass one of them to --group, or --new-group for rows of a "
        "new group of the population"))


def _classify_rows(result, path: str):
    """Group probabilities of each row of a file, and the most probable group."""
    data = read_table(path, numbers=result.features)
    missing = [f for f in result.features if f not in data.columns]
    if missing:
        raise InputError(
            f"column(s) {missing} not found in '{path}'; the fit needs features "
            f"{result.features}"
        )
    if len(data) == 0:
        raise InputError(f"'{path}' has no rows to classify")
    _check_numeric(data, result.features, path)
    with _report_warnings():
        probs = result.classify(data[result.features])
    table = probs.reset_index(drop=True)
    table.columns = [f"p[{g}]" for g in result.groups]
    # a row without any feature value has only the groups' prior weights: no group is
    # the row's, so none is named
    observed = data[result.features].notna().any(axis=1).to_numpy()
    best = probs.to_numpy().argmax(axis=1)
    table.insert(0, "group", [result.groups[i] if seen else ""
                              for i, seen in zip(best, observed, strict=True)])
    return table


def _check_numeric(data, features: Sequence[str], path: str) -> None:
    """Feature columns of rows to classify must hold finite numbers or missing values."""
    import numpy as np

    from groupcov.data.frame import value_examples
    from groupcov.data.validate import positions_text

    for f in features:
        column = data[f]
        if column.dtype.kind not in "fiub":
            examples = value_examples(column)
            shown = f" (e.g. {examples[0]!r})" if examples else f" (dtype {column.dtype})"
            raise InputError(f"column '{f}' of '{path}' is not numeric{shown}; "
                             "the features of rows to classify must be numbers")
        infinite = np.flatnonzero(np.isinf(column.to_numpy())) if column.dtype.kind == "f" else []
        if len(infinite):
            raise InputError(f"column '{f}' of '{path}' has {len(infinite)} infinite value(s) "
                             f"({positions_text(infinite.tolist(), len(infinite))}); replace "
                             "or remove them")


def _predictive_rows(result, group: str | None, n: int, seed, new_group: bool = False):
    """``n`` posterior predictive rows of ``group``, each from its own posterior draw.

    ``new_group``: rows of a new group of the population (hierarchical or pooled
    modes); ``group`` must otherwise be a group of the fit.
    """
    import numpy as np
    import pandas as pd

    post = result.idata.posterior
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    per_draw = -(-n // n_samples)
    with _report_warnings():
        pp = result.predict(group or "new", n=per_draw, random_seed=seed,
                            new_group=new_group).posterior_predictive
    obs = pp["obs"].transpose("chain", "draw", "row", "feature").values
    chain, draw = np.meshgrid(pp["chain"].values, pp["draw"].values, indexing="ij")
    rows = obs.reshape(-1, obs.shape[-1])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(rows), size=n, replace=False))
    table = pd.DataFrame(rows[pick], columns=list(result.features))
    table.insert(0, "draw", np.repeat(draw.ravel(), per_draw)[pick])
    table.insert(0, "chain", np.repeat(chain.ravel(), per_draw)[pick])
    return table


def _parse_candidates(values: Sequence[str] | None) -> list[tuple[str, str]] | None:
    if values is None:
        return None
    out = []
    for v in values:
        parts = v.replace(":", "/").split("/")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or any(p not in _POOLING for p in parts):
            raise InputError(
                f"--candidates {v!r}: write MEANS/COVARIANCE with each one of "
                f"{', '.join(_POOLING)} (for example hierarchical/unpooled)"
            )
        out.append((parts[0], parts[1]))
    if len(set(out)) < 2:
        raise InputError(
            f"--candidates: give at least two different candidates (got "
            f"{' '.join(values)}), for example --candidates pooled hierarchical"
        )
    return out


def _compare(args: argparse.Namespace) -> int:
    from groupcov.comparison import DEFAULT_CANDIDATES, compare

    candidates = _parse_candidates(args.candidates)
    out = _out_file(args.out, "--out")
    _data_file(args.data)
    with _report_warnings():
        stats = reduce_file(args.data, args.group, _feature_names(args.data, args.features))
    if args.pointwise == "group" and stats.n_groups < 2:
        raise InputError(
            f"--pointwise group (leave one group out) needs at least two groups, but column "
            f"'{args.group}' of the data has {stats.n_groups}; use --pointwise row"
        )
    _check_pooling(stats, args.group, candidates or DEFAULT_CANDIDATES, "--candidates")
    features = list(stats.features)
    # the rows, read as the statistics were: the same columns, labels and missing values
    data = (read_table(args.data, [args.group, *features], numbers=features)
            if args.pointwise == "row" else stats)
    kwargs = _sampling_kwargs(args)
    with _report_warnings():
        table = compare(data, group=args.group, features=features, candidates=candidates,
                        pointwise=args.pointwise, **kwargs)
    shown = table.drop(columns=[c for c in ("warning", "scale") if c in table.columns])
    print(shown.to_string(float_format=lambda x: f"{x:.2f}"))
    if "warning" in table.columns:
        if args.pointwise == "row":
            unit, advice = "rows", "more draws or --pointwise group may help"
        else:  # a group is much of the data: leaving it out moves the posterior far
            unit, advice = ("groups", "more draws may help, but where a group holds much "
                            "of the data PSIS-LOO cannot stand in for leaving it out")
        for name in table.index[table["warning"].astype(bool)]:
            print(f"note: the LOO estimate of '{name}' is unreliable (Pareto k above the "
                  f"threshold for some {unit}); {advice}")
    if args.out:
        _write_table(table.rename_axis("model").reset_index(), out)
    return 0


def _figure_types() -> list[str]:
    """File name endings matplotlib can save a figure as (png, pdf, svg...)."""
    from matplotlib.figure import Figure

    return sorted(Figure().canvas.get_supported_filetypes())


def _demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    from groupcov import GroupCovModel
    from groupcov.datasets import two_groups
    from groupcov.diagnostics import summarize

    # matplotlib only when a figure is asked for (its import takes half a second)
    plot = _out_file(args.plot, "--plot", _figure_types()) if args.plot else None
    sim = two_groups(n_per_group=args.rows, seed=args.data_seed)
    print(
        f"Two groups, {args.rows} rows each, features x and y:\n"
        "  A ~ N((0, 0), [[1, 0], [0, 1]])\n"
        "  B ~ N((1, -1), [[1, -0.5], [-0.5, 1]])\n"
    )
    model = GroupCovModel(sim.data, group="group", features=sim.features)
    print(model)
    with _report_warnings():
        result = model.fit(
            sampler=args.sampler,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            random_seed=args.seed,
            progressbar=False,
        )
    post = result.posterior
    summary = {
        name: summarize(
            post[name].transpose("chain", "draw", "group", ...).values,
            0.94,
            columns=("mean", "hdi_low", "hdi_high", "r_hat", "ess_bulk"),
        )
        for name in ("mu", "cov")
    }
    feats = sim.features
    groups = [str(g) for g in post["group"].values]
    rows = []
    for g in sim.mean:
        k = groups.index(str(g))
        for i, f in enumerate(feats):
            rows.append((g, "mu", (k, i), f"mu[{f}]", sim.mean[g][i]))
        for i, f in enumerate(feats):
            for j, h in enumerate(feats):
                rows.append((g, "cov", (k, i, j), f"cov[{f},{h}]", sim.cov[g][i, j]))
    inside = 0
    header = (
        f"{'group':<6}{'parameter':<12}{'true':>8}{'mean':>9}{'94% HDI':>20}"
        f"{'R-hat':>8}{'ESS':>7}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for g, name, at, label, t in rows:
        s = {key: float(values[at]) for key, values in summary[name].items()}
        ok = s["hdi_low"] <= t <= s["hdi_high"]
        inside += ok
        interval = f"[{s['hdi_low']:.3f}, {s['hdi_high']:.3f}]"
        print(
            f"{g:<6}{label:<12}{t:>8.3f}{s['mean']:>9.3f}"
            f"{interval:>20}{s['r_hat']:>8.3f}{s['ess_bulk']:>7.0f}"
            f"{'' if ok else '  <- outside'}"
        )
    diag = result.diagnostics()
    print(
        f"\n{inside} of {len(rows)} true values inside their 94% intervals; "
        f"{_diagnostics_line(diag)[:-1]}, sampler {post.attrs.get('sampler')}); "
        f"{time.perf_counter() - start:.1f} s"
    )
    converged = diag.max_r_hat <= 1.01 and diag.divergences == 0
    if not converged:
        print("CHECK: the sampler did not converge (see the diagnostics above)")
    elif inside == len(rows):
        print("OK")
    else:
        # with 94% intervals about one true value in 17 falls outside by chance
        print(f"OK: converged; {len(rows) - inside} true value(s) outside a 94% interval, "
              f"{0.06 * len(rows):.1f} expected by chance")
    if args.plot:
        from groupcov import plots

        fig = plots.ellipses(result, data=sim.data, group_column="group", max_points=600)
        fig.savefig(plot, dpi=110)
        print(f"groupcov: wrote {plot}", file=sys.stderr)
    return 0 if converged else 1


def _sampling_args(parser: argparse.ArgumentParser, draws: int = 1000, chains: int = 4) -> None:
    g = parser.add_argument_group("sampling")
    g.add_argument("--sampler", choices=_SAMPLERS, default=None,
                   help="NUTS back-end (default numpyro)")
    g.add_argument("--draws", type=_positive_int, default=draws,
                   help=f"draws per chain (default {draws})")
    g.add_argument("--tune", type=_nonnegative_int, default=1000,
                   help="warm-up steps per chain (default 1000)")
    g.add_argument("--chains", type=_positive_int, default=chains,
                   help=f"number of chains (default {chains})")
    g.add_argument("--seed", type=_nonnegative_int, default=None,
                   help="random seed, a whole number >= 0 (reproducible draws)")
    g.add_argument("--target-accept", type=_probability, default=None,
                   help="the sampler's target acceptance rate; higher means smaller steps "
                        "and fewer divergent transitions (default 0.9, 0.95 for hierarchical "
                        "models of fewer than 10 groups, 0.8 for jittered HMC draws)")
    g.add_argument("--algorithm", choices=_ALGORITHMS, default=None,
                   help="numpyro sampler only: NUTS throughout, or HMC whose warm-up "
                        "trajectories run to their first U-turn and whose later ones have "
                        "jittered lengths (default: jittered "
                        "when every group has at least p + 20 complete rows and there are "
                        "10 groups or more, else nuts)")


def _sampling_kwargs(args: argparse.Namespace) -> dict:
    """``fit`` options from the sampling arguments."""
    kwargs = {"draws": args.draws, "tune": args.tune, "chains": args.chains,
              "random_seed": args.seed}
    if args.sampler:
        kwargs["sampler"] = args.sampler
    if args.target_accept is not None:
        kwargs["target_accept"] = args.target_accept
    if args.algorithm is not None:
        if (args.sampler or "numpyro") != "numpyro":
            raise InputError("--algorithm applies to --sampler numpyro only")
        kwargs["algorithm"] = args.algorithm
    return kwargs


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA",
                        help="CSV (.csv, .tsv, optionally compressed) or Parquet file, or a "
                             "quoted glob such as 'parts/*.parquet'")
    parser.add_argument("--group", required=True, metavar="COL",
                        help="column holding the group labels")
    parser.add_argument("--features", nargs="+", metavar="COL",
                        help="feature columns, space- or comma-separated; a name that "
                             "is a column is kept whole, commas included (default: every "
                             "numeric column except --group)")


def _traceback_arg(parser: argparse.ArgumentParser) -> None:
    """``--traceback`` after the command name too (``groupcov fit ... --traceback``)."""
    parser.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of errors")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``groupcov`` command."""
    parser = _Parser(
        prog="groupcov",
        description="Bayesian estimation of per-group means and covariance matrices.",
        epilog="Example: groupcov fit data.csv --group species --features x y z --out fit/",
    )
    parser.add_argument("--traceback", action="store_true",
                        help="show the full traceback of errors (also accepted after the "
                             "command name)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit",
        help="fit per-group means and covariances to a table and write a report",
        description="Fit per-group means and covariance matrices to the rows of DATA and "
        "write posterior.nc, summary.csv, covariances.csv, correlations.csv, ellipses.png "
        "and report.html into --out.",
        epilog="Example: groupcov fit data.csv --group species --features x y z --out fit/",
    )
    _data_args(fit)
    fit.add_argument("--means", choices=_POOLING, default="hierarchical",
                     help="pooling of the group means (default hierarchical)")
    fit.add_argument("--covariance", choices=_POOLING, default="hierarchical",
                     help="pooling of the covariance matrices (default hierarchical)")
    _sampling_args(fit)
    fit.add_argument("--out", required=True, metavar="DIR",
                     help="directory for the outputs (created if missing)")
    bar = fit.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="live progress bar (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="one line per stage instead of a live bar")
    fit.add_argument("--quiet", action="store_true", help="no progress output")
    _traceback_arg(fit)
    fit.set_defaults(func=_fit)

    predict = sub.add_parser(
        "predict",
        help="draw new rows of a group, or group probabilities of new rows",
        description="From a saved fit (the --out directory of `groupcov fit`, or its "
        "posterior.nc): draw rows from the posterior predictive distribution of a group "
        "(--group G, or --new-group for a new group), or give each row of a file the "
        "probability of belonging to each group (--classify FILE).",
    )
    predict.add_argument("fit", metavar="FIT", help="directory or posterior.nc of a fit")
    what = predict.add_mutually_exclusive_group(required=True)
    what.add_argument("--group", metavar="G",
                      help="group of the fit to draw rows for (an unknown label is an error "
                           "that lists the groups)")
    what.add_argument("--new-group", action="store_true",
                      help="draw rows of a new group of the population (hierarchical or "
                           "pooled fits); --group new does the same when no group of the fit "
                           "is called 'new'")
    what.add_argument("--classify", metavar="FILE",
                      help="CSV or Parquet file of rows to classify")
    predict.add_argument("--n", type=_positive_int, default=100,
                         help="rows to draw with --group, each from its own posterior draw "
                              "while there are enough (default 100)")
    predict.add_argument("--seed", type=_nonnegative_int, default=None, help="random seed (>= 0)")
    predict.add_argument("--out", metavar="FILE", help="CSV file to write (default stdout)")
    _traceback_arg(predict)
    predict.set_defaults(func=_predict)

    compare = sub.add_parser(
        "compare",
        help="compare pooling choices by PSIS-LOO (leave one row or one group out)",
        description="Fit several pooling choices to DATA and rank them by their expected "
        "log predictive density, estimated by PSIS-LOO: leave one row out (--pointwise row, "
        "the default: how well each choice predicts new rows of the groups) or leave one "
        "group out (--pointwise group: how well it predicts a new group; needs at least "
        "two groups). DATA is read as `groupcov fit` reads it.",
    )
    _data_args(compare)
    compare.add_argument(
        "--candidates", nargs="+", metavar="MEANS/COV",
        help="pooling choices to compare, e.g. hierarchical/hierarchical unpooled/pooled "
             "(a single word sets both; default: hierarchical, pooled and unpooled)")
    compare.add_argument(
        "--pointwise", choices=("row", "group"), default="row",
        help="leave one row out (predict new rows of the groups; default) or one group "
             "out (predict a new group)")
    _sampling_args(compare)
    compare.add_argument("--out", metavar="FILE", help="also write the table to this CSV file")
    _traceback_arg(compare)
    compare.set_defaults(func=_compare)

    demo = sub.add_parser(
        "demo",
        help="simulate the two-group example, fit it and compare with the truth",
        description="Simulate two groups with known means and covariances, fit the "
        "default hierarchical model and print each true value beside its posterior "
        "mean and 94% interval.",
    )
    demo.add_argument("--sampler", choices=_SAMPLERS, default=None,
                      help="NUTS back-end (default numpyro)")
    demo.add_argument("--rows", type=_positive_int, default=1000,
                      help="rows per group (default 1000)")
    demo.add_argument("--draws", type=_positive_int, default=1000,
                      help="draws per chain (default 1000)")
    demo.add_argument("--tune", type=_nonnegative_int, default=1000,
                      help="warm-up steps per chain (default 1000)")
    demo.add_argument("--chains", type=_positive_int, default=4,
                      help="number of chains (default 4)")
    demo.add_argument("--seed", type=int, default=1, help="sampler seed")
    demo.add_argument("--data-seed", type=int, default=20240601, help="simulation seed")
    demo.add_argument("--plot", metavar="PNG", default=None,
                      help="also save the covariance-ellipse plot of the fit to this file")
    _traceback_arg(demo)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``groupcov`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    input_errors = _input_errors()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("groupcov: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader closed the pipe (`groupcov predict ... | head`): stop quietly, with
        # the status of a Unix tool ended by SIGPIPE; later writes go nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except input_errors as err:
        # deliberate: a path, option, file or column that cannot be used, said in one line
        print(f"groupcov {args.command}: error: {flag_form(_first_line(err))}",
              file=sys.stderr)
        if args.traceback:
            raise
        return 2
    except Exception as err:
        if args.traceback:
            raise
        print(
            f"groupcov {args.command}: unexpected error: {type(err).__name__}: "
            f"{_first_line(err)} (this is not a problem with the input that groupcov "
            "recognized; run again with --traceback for details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
