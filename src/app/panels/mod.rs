//! The window's panels: each a function over the app state that may push actions.

pub mod compare;
pub mod curve;
pub mod data;
pub mod health;
pub mod layers;
pub mod model;
pub mod results;
pub mod train;
