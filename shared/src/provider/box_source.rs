//! Box users become accounts here (being written).
