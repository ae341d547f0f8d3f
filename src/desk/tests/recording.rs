//! Recording policy and call history through the desk.

use super::*;
