mod apple_stub;
mod probe;
