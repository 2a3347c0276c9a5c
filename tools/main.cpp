// `tandem`: the command-line front end of the engine.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "core/error.h"
#include "tools/cli_common.h"

int main(int argc, char** argv) {
  using namespace tandem::cli;
  CLI::App app{"Tandem: run Llama-family GGUF models split across GPU and CPU"};
  app.require_subcommand(1);
  Action action;
  register_inspect(app, action);
  register_tokenize(app, action);
  register_generate(app, action);
  register_perplexity(app, action);
  register_client(app, action);
  register_serve(app, action);
  register_synth(app, action);
  register_quantize(app, action);
  register_plan(app, action);
  register_bench(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action ? action() : 1;
  } catch (const tandem::core::Error& e) {
    std::fprintf(stderr, "tandem: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tandem: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem: error: %s\n", e.what());
    return 1;
  }
}
