mod mail_transport;
mod smtp_stub;
