# Quartet — build, run, test. `make run` and `make test` are the two set-up
# commands of the README; keep them working on a fresh machine.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
DATA_DIR ?= ./data
FUZZTIME ?= 5s
PREFIX   ?= /usr/local
DESTDIR  ?=
GOBIN    ?= $(shell $(GO) env GOPATH)/bin

.PHONY: all build run test test-go test-interop fuzz bench bench-compare lint generate install uninstall clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/quartet ./appliance/cmd/quartet
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/quartet-bench ./bench/cmd/quartet-bench

# Serve every protocol on loopback with data in ./data (Ctrl-C stops cleanly).
run: build
	bin/quartet serve --data-dir $(DATA_DIR)

# Unit, client-library and interop tests. Interop scripts skip clients that
# are not installed locally; CI installs them all.
test: test-go test-interop

test-go:
	$(GO) vet ./...
	$(GO) test -short -count=1 -timeout 15m ./...

test-interop: build
	bash test/interop/run.sh

# Every fuzz target for $(FUZZTIME) each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-compare: build
	NO_BUILD=1 bash bench/compare.sh

lint:
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(GOBIN)/staticcheck ./...

generate:
	$(GO) generate ./...

install: build
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' BIN=bin/quartet sh systemd/install.sh

uninstall:
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' sh systemd/uninstall.sh

clean:
	rm -rf bin
