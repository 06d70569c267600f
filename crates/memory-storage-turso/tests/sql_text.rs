//! No SQL text is built from a value: every `format!` in this crate's sources whose literal
//! holds SQL may interpolate only the expressions listed here (table and column names from
//! constants, placeholder lists, counts and validated numbers), and every `push_str` onto
//! SQL text appends a literal. A new interpolation fails this test until someone checks it
//! and adds it to the list with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

/// Interpolations that never carry caller data, each with why.
const ALLOWED: [(&str, &str); 44] = [
    ("E::TABLE", "a table name constant of the Table trait"),
    (
        "table",
        "delete_side_sql's table: one of two side-table constants",
    ),
    ("columns.join(\", \")", "E::COLUMNS, a constant"),
    (
        "row_groups(rows, columns.len())",
        "only `(?, ?)` placeholder groups",
    ),
    (
        "updates.join(\", \")",
        "`c = excluded.c` for the constant columns",
    ),
    ("placeholders(rows)", "only `?` placeholders"),
    ("row_groups(rows, 2)", "only `(?, ?)` placeholder groups"),
    ("row_groups(rows, 3)", "only `(?, ?, ?)` placeholder groups"),
    (
        "self.cache_size",
        "a validated integer (page_cache_kib, 64..=4 GiB)",
    ),
    (
        "self.journal_size_limit",
        "an integer of ours (wal_limit_pages, validated 64..=2^20, times 4,096)",
    ),
    (
        "sql.text",
        "EXPLAIN of SQL text this crate built (itself checked here)",
    ),
    ("name", "a pragma name constant in a unit test"),
    ("keys", "a key-table name constant of Table::TEXT"),
    ("fts", "an FTS5 table name constant of Table::TEXT"),
    ("items", "E::TABLE, a constant"),
    ("vectors", "a vector-table name constant of Table::VECTORS"),
    (
        "f",
        "a filter's terms from query.rs's constant fragments, placeholders numbered",
    ),
    (
        "dimension",
        "the store's embedding dimension, a validated usize (1..=4,096)",
    ),
    ("settings", "one of two constant vector-index settings"),
    (
        "filter",
        "a query's `AND ...` terms from query.rs's constant fragments",
    ),
    ("view", "Table::WRITE_VIEW, a view name constant"),
    (
        "matches",
        "one of two fragments built in vectors.rs from the names above",
    ),
    (
        "self.mmap_size",
        "a validated integer (mmap_mib, 0..=2^20, times 2^20)",
    ),
    (
        "filtered",
        "empty, or a join and filter built in vectors.rs from the names above",
    ),
    (
        "matched",
        "a placeholder number of ours (text_index::search_sql's first)",
    ),
    (
        "limit",
        "a placeholder number of ours (text_index::search_sql's first + 1)",
    ),
    (
        "bucket_sql(table, items, dimension, settings)",
        "the domain buckets' statements, built from the names above (checked here)",
    ),
    (
        "new_item_id",
        "`NEW.item_id` or `NEW.id`, a trigger's column reference constant",
    ),
    ("DOMAIN_BUCKETS", "the bucket count, a constant"),
    ("b", "a bucket number below DOMAIN_BUCKETS"),
    (
        "bucket_of(\"NEW.item_id\")",
        "a subquery built in vectors.rs from the names above",
    ),
    (
        "bucket_of(\"NEW.id\")",
        "a subquery built in vectors.rs from the names above",
    ),
    (
        "assign(\"NEW.item_id\")",
        "a statement built in vectors.rs from the names above",
    ),
    (
        "assign(\"NEW.id\")",
        "a statement built in vectors.rs from the names above",
    ),
    (
        "tables",
        "the bucket tables' statements, built in vectors.rs from the names above",
    ),
    (
        "insert",
        "the bucket trigger's statements, built in vectors.rs from the names above",
    ),
    (
        "update",
        "the bucket trigger's statements, built in vectors.rs from the names above",
    ),
    (
        "delete",
        "the bucket trigger's statements, built in vectors.rs from the names above",
    ),
    (
        "leave",
        "the bucket trigger's statements, built in vectors.rs from the names above",
    ),
    (
        "join",
        "the bucket trigger's statements, built in vectors.rs from the names above",
    ),
    (
        "fill",
        "the bucket fill's statements, built in vectors.rs from the names above",
    ),
    (
        "index",
        "the vector index's name: a constant, or an expression choosing a bucket's from a bound domain",
    ),
    (
        "first.text",
        "a search statement built in this crate (itself checked here)",
    ),
    (
        "second.text",
        "a search statement built in this crate (itself checked here)",
    ),
];

const KEYWORDS: [&str; 12] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "PRAGMA", "WHERE", "VALUES", "CREATE", "DROP", "ALTER",
    "EXPLAIN", "FROM",
];

/// The text from an opening parenthesis at `start` (exclusive) to its match, skipping
/// string literals.
fn balanced(text: &str, start: usize) -> &str {
    let bytes = text.as_bytes();
    let (mut depth, mut i, mut in_string) = (1, start, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'(' if !in_string => depth += 1,
            b')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[start..i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    &text[start..]
}

/// Splits `args` at top-level commas.
fn split_args(args: &str) -> Vec<String> {
    let (mut out, mut current, mut depth, mut in_string, mut escaped) =
        (Vec::new(), String::new(), 0, false, false);
    for ch in args.chars() {
        if in_string {
            current.push(ch);
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// `{name}` captures inside a format literal (not `{}`, `{:?}` or `{{`).
fn inline_captures(literal: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = literal;
    while let Some(open) = rest.find('{') {
        if rest[open..].starts_with("{{") {
            rest = &rest[open + 2..];
            continue;
        }
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        let name = inner.split(':').next().unwrap_or_default().trim();
        if !name.is_empty() && !name.chars().all(|c| c.is_ascii_digit()) {
            out.push(name.to_string());
        }
        rest = &rest[open + close + 1..];
    }
    out
}

fn is_sql(literal: &str) -> bool {
    literal
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|word| KEYWORDS.contains(&word))
}

/// Every expression interpolated into a SQL literal by a `format!` in `text`, with its line.
fn sql_interpolations(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("format!(") {
        let args = split_args(balanced(text, at + "format!(".len()));
        let Some(literal) = args.first().filter(|l| is_sql(l)) else {
            continue;
        };
        let line = text[..at].matches('\n').count() + 1;
        for expr in inline_captures(literal)
            .into_iter()
            .chain(args[1..].iter().cloned())
        {
            out.push((line, expr));
        }
    }
    out
}

/// Every problem in one source text: interpolations in SQL literals that are not allowed,
/// and `push_str` of anything but a literal.
fn problems(file: &str, text: &str) -> Vec<String> {
    let allowed: Vec<&str> = ALLOWED.iter().map(|(expr, _)| *expr).collect();
    let mut out: Vec<String> = sql_interpolations(text)
        .into_iter()
        .filter(|(_, expr)| !allowed.contains(&expr.as_str()))
        .map(|(line, expr)| format!("{file}:{line}: SQL built with `{expr}`"))
        .collect();
    for (at, _) in text.match_indices("push_str(") {
        let arg = balanced(text, at + "push_str(".len()).trim();
        let literal = arg.starts_with('"') && split_args(arg).len() == 1;
        if !literal {
            let line = text[..at].matches('\n').count() + 1;
            out.push(format!("{file}:{line}: push_str of `{arg}`, not a literal"));
        }
    }
    out
}

#[test]
fn sql_is_built_from_constants_and_placeholders_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut found, mut seen) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            seen.extend(sql_interpolations(&text).into_iter().map(|(_, expr)| expr));
            found.extend(problems(&name, &text));
        }
    }
    assert!(
        found.is_empty(),
        "SQL text built from values:\n{}",
        found.join("\n")
    );
    // The list stays exact: an entry nothing uses any more goes.
    for (expr, why) in ALLOWED {
        assert!(
            seen.iter().any(|s| s == expr),
            "`{expr}` ({why}) is allowed but never used"
        );
    }
}

#[test]
fn the_check_catches_a_value_in_sql() {
    let bad = r#"fn f(domain: &str) -> String { format!("SELECT id FROM episodes WHERE domain = '{domain}'") }"#;
    assert_eq!(problems("bad.rs", bad).len(), 1);
    let bad_positional = r#"let q = format!("DELETE FROM {} WHERE id = {}", E::TABLE, id);"#;
    assert_eq!(
        problems("bad.rs", bad_positional),
        vec!["bad.rs:1: SQL built with `id`"]
    );
    let bad_push = r#"text.push_str(&user_filter);"#;
    assert_eq!(problems("bad.rs", bad_push).len(), 1);
    let fine = r#"format!("SELECT COUNT(*) FROM {}", E::TABLE); text.push_str(" AND kind = ?"); format!("opening {path}")"#;
    assert!(problems("fine.rs", fine).is_empty());
}
