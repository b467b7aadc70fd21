//! The ratings: a fixed table, as in the original demo.

/// Stars per thing.
const RATINGS: [(&str, f64); 4] = [
    ("basketball", 2.1),
    ("football", 2.2),
    ("camera", 4.5),
    ("briefcase", 3.5),
];

/// The rating of `thing`, if it has one.
pub fn stars(thing: &str) -> Option<f64> {
    RATINGS
        .iter()
        .find(|(name, _)| *name == thing)
        .map(|(_, stars)| *stars)
}

/// Every thing that has a rating.
pub fn things() -> impl Iterator<Item = &'static str> {
    RATINGS.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_things_have_the_original_ratings() {
        assert_eq!(stars("basketball"), Some(2.1));
        assert_eq!(stars("football"), Some(2.2));
        assert_eq!(stars("camera"), Some(4.5));
        assert_eq!(stars("briefcase"), Some(3.5));
        assert_eq!(stars("Camera"), None);
        assert_eq!(things().count(), 4);
    }
}
