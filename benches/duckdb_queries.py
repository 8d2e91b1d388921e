#!/usr/bin/env python3
"""DuckDB's side of benches/benches/query_speed.rs.

usage: duckdb_queries.py GLOB QUERIES.json RUNS

Reads the Parquet files matching GLOB (hive partitions date=/hour=, columns united by name) as
the view `t`, and for each query of QUERIES.json ([{"name", "sql"}]) runs it once on a fresh
connection (cold: DuckDB's caches empty) and RUNS more times (warm), printing a JSON list of
{"name", "cold_s", "warm_s" (the median), "rows"} on stdout. DuckDB uses every core (its
default), as DataFusion does.
"""
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


def rows(cur):
    names = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        out.append({n: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for n, v in zip(names, r)})
    return out


def main():
    glob, spec, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queries = json.load(open(spec))
    answers = []
    for q in queries:
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
