//! The four things the market sells, as in the original demo.

use serde::Serialize;

/// A thing for sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thing {
    /// Stable id, also the ratings service's name for it.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Price in cents (integers: money is never a float).
    pub price_cents: u32,
}

/// Everything for sale, in display order.
pub const THINGS: [Thing; 4] = [
    Thing {
        id: "basketball",
        name: "Basketball",
        price_cents: 1999,
    },
    Thing {
        id: "football",
        name: "Football",
        price_cents: 1999,
    },
    Thing {
        id: "camera",
        name: "Camera",
        price_cents: 9999,
    },
    Thing {
        id: "briefcase",
        name: "Briefcase",
        price_cents: 4999,
    },
];

/// The position of `id` in [`THINGS`].
pub fn position(id: &str) -> Option<usize> {
    THINGS.iter().position(|t| t.id == id)
}

/// `$19.99` for 1999.
pub fn format_price(cents: u32) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_format_as_dollars() {
        assert_eq!(format_price(1999), "$19.99");
        assert_eq!(format_price(9999), "$99.99");
        assert_eq!(format_price(5), "$0.05");
        assert_eq!(format_price(0), "$0.00");
    }

    #[test]
    fn things_are_found_by_id() {
        assert_eq!(position("camera"), Some(2));
        assert_eq!(position("Camera"), None);
    }
}
