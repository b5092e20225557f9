package amqp

//go:generate go run ./internal/gen -spec internal/gen/amqp0-9-1.stripped.extended.xml -out methods_gen.go
