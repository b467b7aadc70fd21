//! The fleet sections' tables: figures by row and column, every run, shown
//! as medians with their range.

use crate::stats::Spread;
use serde::Serialize;
use std::fmt::Write as _;

/// Figures by row and column.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Table {
    /// Each figure, in the order first recorded.
    pub rows: Vec<Row>,
}

/// One figure: a value per run in each column.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// Unit.
    pub unit: &'static str,
    /// Per column, the value of every run.
    pub columns: Vec<Vec<f64>>,
}

impl Table {
    /// Records one run's `value` of `what` in `column`.
    pub(super) fn record(&mut self, what: &str, unit: &'static str, column: usize, value: f64) {
        let at = match self.rows.iter().position(|r| r.what == what) {
            Some(at) => at,
            None => {
                self.rows.push(Row {
                    what: what.to_owned(),
                    unit,
                    columns: Vec::new(),
                });
                self.rows.len() - 1
            }
        };
        let columns = &mut self.rows[at].columns;
        if columns.len() <= column {
            columns.resize(column + 1, Vec::new());
        }
        columns[column].push(value);
    }

    /// The row whose name starts with `what`.
    pub fn row(&self, what: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.what.starts_with(what))
    }

    /// The rows as markdown table lines, `columns` wide.
    pub(super) fn write_rows(&self, md: &mut String, columns: usize) {
        for row in &self.rows {
            let _ = write!(md, "| {} |", row.what);
            for column in 0..columns {
                let values = row.columns.get(column).map_or(&[][..], Vec::as_slice);
                let shown = Spread::of(values.iter().copied())
                    .map_or("n/a".to_owned(), |s| format!("{} {}", s.show(2), row.unit));
                let _ = write!(md, " {shown} |");
            }
            md.push('\n');
        }
    }
}

/// The value at quantile `q` of `values` (sorted here), NaN if none.
pub(super) fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(((values.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_order_and_columns_fill_in_any_order() {
        let mut table = Table::default();
        table.record("b", "ms", 1, 2.0);
        table.record("a", "ms", 0, 1.0);
        table.record("b", "ms", 0, 3.0);
        let mut md = String::new();
        table.write_rows(&mut md, 2);
        assert_eq!(md.lines().count(), 2);
        assert!(md.starts_with("| b |"), "{md}");
        assert!(
            md.lines().nth(1).is_some_and(|l| l.ends_with("n/a |")),
            "{md}"
        );
        assert_eq!(quantile(vec![3.0, 1.0, 2.0], 0.5), 2.0);
        assert!(quantile(Vec::new(), 0.5).is_nan());
    }
}
