//! calls.max and who may ring: refusals as the other side sees them.

use super::*;
