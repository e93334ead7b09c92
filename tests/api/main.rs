//! Black-box tests of the HTTP API: a real server on a random port, each test
//! over its own SQLite file. One binary, one module per area.

mod helpers;

mod smoke;
