//! Moves across calls through the desk: consult, Leave & transfer, merge, transfer timeouts.

use super::*;
