//! The channel back to Neovim: the backend's stdout and what it asks of the editor.

pub mod editor;
pub mod encode;
pub mod outgoing;
