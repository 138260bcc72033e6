//! Quoting for the SQL we build from names found in the catalog: every
//! identifier is double-quoted, every literal single-quoted, doubling the
//! quote inside, exactly as PostgreSQL's `quote_ident`/`quote_literal` do.

pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
