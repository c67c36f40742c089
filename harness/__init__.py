"""The test and benchmark harness: the whole system started as `make run` starts it, one
service in-process, PostgreSQL databases and RabbitMQ vhosts of their own, an SMTP sink, a
cuttable TCP proxy, a fake Stripe, headless chromium. The tests and bench/ both import it;
the services never do (the images do not ship it)."""
