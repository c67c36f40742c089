-- One database per service: services never read each other's tables.
CREATE DATABASE identity;
CREATE DATABASE customers;
CREATE DATABASE orders;
CREATE DATABASE notifications;
