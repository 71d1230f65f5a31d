//! The one way people read a stage.

/// A stage as people read it, counting from 1: index 1 of a three-stage plan is
/// `stage 2 of 3`. Everything a person reads (status message, Events, notifications,
/// `simulate`'s text, the report, the command line) uses this; machine formats (JSON, the
/// status field `stage`) keep the 0-based index.
pub fn stage_label(index: u32, count: usize) -> String {
    format!("stage {} of {count}", stage_number(index))
}

/// A stage's number as people count it, from 1: for a table column headed "Stage". Built on
/// by [`stage_label`].
pub fn stage_number(index: u32) -> u64 {
    u64::from(index) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_one() {
        assert_eq!(stage_label(0, 3), "stage 1 of 3");
        assert_eq!(stage_label(2, 3), "stage 3 of 3");
        assert_eq!(stage_label(u32::MAX, 1), "stage 4294967296 of 1");
        assert_eq!(stage_number(0), 1);
    }
}
