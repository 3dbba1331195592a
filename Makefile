# Builds the Lambda functions for `sam build` (Metadata BuildMethod: makefile in
# infra/template.yaml). At the workspace root because SAM looks for the Makefile in each
# function's CodeUri, and CodeUri is the Cargo workspace.
#
# SAM runs `make build-<LogicalId>` once per function, with ARTIFACTS_DIR set. Every such
# target runs the same single `cargo lambda build` of all the binaries the template deploys
# (each function's Metadata.BuildProperties.Binary) into $(TARGET_DIR)/lambda/<arch>/<binary>/,
# then copies its own bootstrap to $(ARTIFACTS_DIR). The first target compiles; the others find everything up to date:
# cargo's fingerprints are the stamp and its lock on the build directory is the lock, so even
# `sam build --parallel` compiles once. A new function needs its template resource (with its
# Binary) and nothing here.
#
# Architecture: SAM does not pass it to a Makefile (aws/aws-sam-cli#3349). `sam build` writes
# its build graph, with each function's resolved architecture (the Architecture parameter), to
# <build dir>/../build.toml before it runs any build, and each target reads it there. ARCH=arm64
# or ARCH=x86_64 overrides it (and must agree with SAM's when both are known). A build of one
# function (`sam build CollectFunction`) does not rewrite build.toml: it gets the architecture of
# the last full `sam build`.
#
# SAM must run this in the source tree (samconfig.toml sets build_in_source = true): otherwise
# it first copies the whole workspace, target/ and .venv/ included, to a scratch directory.
#
#   sam build                                             # arm64, the template's default
#   sam build --parameter-overrides Architecture=x86_64
#   make lambda ARCH=arm64                                # the cargo build alone, without SAM

TEMPLATE ?= infra/template.yaml
CARGO ?= cargo
# Cargo's target directory (relative paths are relative to this directory).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

# The binaries the template deploys: every `Binary:` of a function's Metadata.BuildProperties.
BINARIES = $(shell awk '$$1 == "Binary:" { print $$2 }' $(TEMPLATE))

flag_arm64 := --arm64
flag_x86_64 := --x86-64

.PHONY: lambda

# All the template's binaries for ARCH in one cargo build, each moved by cargo-lambda to
# $(TARGET_DIR)/lambda/$(ARCH)/<binary>/bootstrap (one directory per architecture, so an arm64
# and an x86_64 build do not overwrite each other).
lambda:
	@case "$(ARCH)" in arm64|x86_64) ;; \
	  *) echo "make lambda: ARCH must be arm64 or x86_64, not '$(ARCH)'" >&2; exit 2;; esac
	@test "$(CURDIR)" = "$(ROOT)" || { echo "make lambda: run in $(ROOT), not $(CURDIR)" >&2; exit 2; }
	@test -n "$(strip $(BINARIES))" || { echo "make lambda: no Binary: in $(TEMPLATE)" >&2; exit 2; }
	@# 2>&1: sam build shows a Makefile's stdout as it comes, its stderr only after a failure.
	$(CARGO) lambda build --release $(flag_$(ARCH)) --lambda-dir $(TARGET_DIR)/lambda/$(ARCH) \
	  $(addprefix --bin ,$(BINARIES)) 2>&1

# SAM's target for one function: the shared build, then this function's bootstrap.
build-%:
	@test -n "$(ARTIFACTS_DIR)" || { echo "$@: ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 2; }
	@test "$(CURDIR)" = "$(ROOT)" || { \
	  echo "$@: sam build copied the workspace to $(CURDIR); build in source instead" >&2; \
	  echo "  (samconfig.toml: build_in_source = true, or sam build --build-in-source)" >&2; exit 2; }
	@set -eu; \
	binary=$$(awk -v id="$*" ' \
	  $$0 == "  " id ":" { inside = 1; next } \
	  inside && /^  [^ #]/ { exit } \
	  inside && $$1 == "Binary:" { print $$2; exit }' $(TEMPLATE)); \
	test -n "$$binary" || { echo "$@: $* has no Metadata.BuildProperties.Binary in $(TEMPLATE)" >&2; exit 2; }; \
	graph="$(ARTIFACTS_DIR)/../../build.toml"; \
	sam_arch=""; \
	if [ -f "$$graph" ]; then \
	  sam_arch=$$(awk -v id='"$*"' ' \
	    /^\[/ { if (hit) exit; arch = "" } \
	    $$1 == "architecture" { arch = $$3; gsub(/"/, "", arch) } \
	    $$1 == "functions" && index($$0, id) { hit = 1 } \
	    END { if (hit) print arch }' "$$graph"); \
	fi; \
	arch="$(ARCH)"; \
	if [ -z "$$arch" ]; then arch="$$sam_arch"; fi; \
	if [ -z "$$arch" ]; then \
	  echo "$@: cannot tell the architecture: no entry for $* in $$graph; set ARCH=arm64 or ARCH=x86_64" >&2; exit 2; \
	fi; \
	if [ -n "$$sam_arch" ] && [ "$$sam_arch" != "$$arch" ]; then \
	  echo "$@: ARCH=$$arch but sam build resolved Architecture=$$sam_arch" >&2; exit 2; \
	fi; \
	$(MAKE) --no-print-directory -f "$(ROOT)/Makefile" lambda ARCH="$$arch"; \
	mkdir -p "$(ARTIFACTS_DIR)"; \
	cp "$(TARGET_DIR)/lambda/$$arch/$$binary/bootstrap" "$(ARTIFACTS_DIR)/bootstrap"; \
	echo "$*: $$binary ($$arch) -> $(ARTIFACTS_DIR)/bootstrap"
