//! The support bundle. (Being written: placeholder so the crate builds while it is.)
