//! Listings for people (aligned columns) and for scripts (`--json`).

use crate::domain::time::rfc3339;

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn time_cell(at: Option<i64>) -> String {
    at.map_or_else(|| "-".to_owned(), rfc3339)
}

pub fn time_json(at: Option<i64>) -> serde_json::Value {
    at.map_or(serde_json::Value::Null, |at| serde_json::Value::String(rfc3339(at)))
}
