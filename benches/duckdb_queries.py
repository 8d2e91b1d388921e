#!/usr/bin/env python3
"""DuckDB's side of benches/benches/query_speed.rs.

usage: duckdb_queries.py GLOB QUERIES.json RUNS

Reads the Parquet files matching GLOB (hive partitions date=/hour=, columns united by name) as
the view `t`, and for each query of QUERIES.json ([{"name", "sql"}]) runs it once on a fresh
connection (cold: DuckDB's caches empty) and RUNS more times (warm), printing a JSON list of
{"name", "cold_s", "warm_s" (the median), "rows"} on stdout. DuckDB uses every core (its
default), as DataFusion does.

A query given as {"name", "sqls": [...]} instead is a batch run one after the other on the same
connection (the outliers comparison: one GROUP BY per field), timed as their sum; its answer
adds "parts_cold_s" and "parts_warm_s" (each query's, the warm ones medians) and its "rows" is
one list per query, null for an answer over MAX_ROWS rows (an identifier's groups, which would
cost more to ship as JSON than to compute). A batch's queries are timed up to their result in
DuckDB's own columnar form (`execute`), not through Python objects, whose conversion would be
most of the time for an answer of a million groups.
"""
import decimal
import json
import statistics
import sys
import time

import duckdb


def connect(glob):
    con = duckdb.connect()
    # A view cannot take a prepared parameter; the glob is quoted as an SQL string literal.
    literal = "'" + glob.replace("'", "''") + "'"
    con.execute(
        f"CREATE VIEW t AS SELECT * FROM read_parquet({literal}, hive_partitioning = true, union_by_name = true)"
    )
    return con


def plain(v):
    """A value as JSON carries it: numbers (a DECIMAL sum too) as numbers, the rest as text."""
    if isinstance(v, (int, float, str, type(None))):
        return v
    if isinstance(v, decimal.Decimal):
        return float(v)
    return str(v)


def rows(cur):
    names = [d[0] for d in cur.description]
    return [{n: plain(v) for n, v in zip(names, r)} for r in cur.fetchall()]


MAX_ROWS = 10_000


def run_batch(con, sqls):
    """Runs `sqls` in turn; returns each one's seconds and rows (None over MAX_ROWS)."""
    times, answers = [], []
    for sql in sqls:
        start = time.perf_counter()
        cur = con.execute(sql)
        times.append(time.perf_counter() - start)
        head = cur.fetchmany(MAX_ROWS + 1)
        if len(head) > MAX_ROWS:
            answers.append(None)
        else:
            names = [d[0] for d in cur.description]
            answers.append([{n: plain(v) for n, v in zip(names, r)} for r in head])
    return times, answers


def batch(glob, q, runs):
    con = connect(glob)
    parts_cold, result = run_batch(con, q["sqls"])
    warm_parts = [run_batch(con, q["sqls"])[0] for _ in range(runs)]
    con.close()
    return {
        "name": q["name"],
        "cold_s": sum(parts_cold),
        "warm_s": statistics.median(sum(p) for p in warm_parts),
        "parts_cold_s": parts_cold,
        "parts_warm_s": [statistics.median(p[i] for p in warm_parts) for i in range(len(q["sqls"]))],
        "rows": result,
    }


def main():
    glob, spec, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queries = json.load(open(spec))
    answers = []
    for q in queries:
        if "sqls" in q:
            answers.append(batch(glob, q, runs))
            a = answers[-1]
            print(f"duckdb: {q['name']} cold {a['cold_s']:.3f} s, warm {a['warm_s']:.3f} s", file=sys.stderr)
            continue
        con = connect(glob)
        start = time.perf_counter()
        result = rows(con.execute(q["sql"]))
        cold = time.perf_counter() - start
        warm = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(q["sql"]).fetchall()
            warm.append(time.perf_counter() - start)
        con.close()
        answers.append(
            {"name": q["name"], "cold_s": cold, "warm_s": statistics.median(warm), "rows": result}
        )
        print(f"duckdb: {q['name']} cold {cold:.3f} s, warm {statistics.median(warm):.3f} s", file=sys.stderr)
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
