# ragbot — user-facing commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help install dev test lint fmt build bench layer clean-stack seed ingest token eval eval-chat validate invoke loadtest

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: ## install the local stack into .local/ (PostgreSQL+pgvector, DynamoDB Local, s3s-fs, model)
	@bash infra/local/install.sh stack

dev: ## install what is missing, start the local stack, migrate and serve the API on 127.0.0.1:3000
	@bash infra/local/dev.sh

test: ## install what is missing, start a throwaway stack on free ports, run every test, tear down
	@bash infra/local/test.sh

validate: ## cfn-lint + sam validate --lint on template.yaml (offline; tools installed into .local/venv)
	@bash infra/local/validate.sh

lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	cargo fmt --all

build: ## Lambda zips of every function (cargo-lambda, release, host architecture) + the model layer; prints sizes
	@bash infra/local/build.sh

layer: ## package the embedding model as a Lambda layer (.local/build/model-layer[.zip])
	@bash infra/local/model-layer.sh

bench: ## benchmarks on a throwaway stack (release build): embedding, ingestion, large documents, retrieval, http (BENCH=…)
ifeq ($(BENCH),http)
	@bash infra/local/install.sh loadtest
	@RAGBOT_NO_LLM=1 bash infra/local/throwaway.sh bash infra/local/bench-http.sh
else
	@EMBEDDING_QUERY_CACHE=$${EMBEDDING_QUERY_CACHE:-0} bash infra/local/throwaway.sh ./target/release/ragbot-bench $(or $(BENCH),all)
endif

loadtest: ## wrk at 100 connections on a throwaway stack: steady, saturation, and while PostgreSQL, DynamoDB and S3 restart; checks no acknowledged write is lost
	@bash infra/local/install.sh loadtest
	@RAGBOT_NO_LLM=1 RAGBOT_DDB_PERSIST=1 bash infra/local/throwaway.sh bash infra/local/loadtest.sh

eval: ## retrieval quality (recall@10, nDCG@10) on ../shared/eval/scifact-subset, vector and hybrid (DATASET=…)
	@bash infra/local/throwaway.sh ./target/release/ragbot eval --dataset $(or $(DATASET),../shared/eval/scifact-subset)

eval-chat: ## chat quality (citation hit@1, right answers, fallback rates) on ../shared/eval/stackfaq-dev (DATASET=…, LLM_PROVIDER=extractive|openai, EVAL_LIMIT=n questions)
	@bash infra/local/throwaway.sh bash infra/local/eval-chat.sh $(or $(DATASET),../shared/eval/stackfaq-dev)

seed: ## load generated knowledge into the running dev stack (SIZE=small|medium|large, TENANT=…)
	@bash infra/local/ragbot.sh seed --size $(or $(SIZE),small) $(if $(TENANT),--tenant $(TENANT))

ingest: ## ingest a file or folder into the running dev stack (FILE=docs/ TENANT=…)
	@bash infra/local/ragbot.sh ingest "$(FILE)" $(if $(TENANT),--tenant $(TENANT))

invoke: ## run a function's Lambda handler on an event against the running dev stack (FN=embed EVENT=events/s3-put.json)
	@bash infra/local/ragbot.sh invoke --function $(FN) --event $(EVENT)

token: ## print a dev token (SUB=alice TENANT=acme ROLES=admin,user)
	@cargo run --quiet -p ragbot-cli -- token --sub $(or $(SUB),dev) --tenant $(or $(TENANT),default) --roles $(or $(ROLES),admin,user)

clean-stack: ## stop a leftover dev stack and delete its data (.local/dev-stack)
	-@bash infra/local/stack.sh down .local/dev-stack
	rm -rf .local/dev-stack
