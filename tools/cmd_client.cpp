// `tandem client …`: talks to a running coordinator over gRPC.
//   generate TEXT   stream a completion, then tok/s (or one JSON document)
//   chat TEXT       the same through the model's chat template
//   health          grpc.health.v1 Check (exit 0 only when SERVING)
//   services        list services through server reflection (what grpcurl list does)
//   info            GetModelInfo as JSON
//   bench           concurrent streaming load (cmd_client_bench.cpp)
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tandem/v1/inference.grpc.pb.h"
#include "tools/cli_common.h"
#include "tools/client_connection.h"

namespace tandem::cli {

namespace {

namespace pb = tandem::v1;
using Clock = std::chrono::steady_clock;

struct ClientOptions {
  ConnectionOptions conn;
  std::string text;
  std::string system;
  int max_tokens = 128;
  float temperature = 0.8f;
  bool temperature_set = false;
  int top_k = -1;
  long long seed = -1;
  std::vector<std::string> stop;
  int logprobs = 0;
  bool ignore_eos = false;
  double timeout_s = 0;   // RPC deadline (0: none)
  double wait_s = 0;      // health: keep asking this long for SERVING
  std::string service;    // health: which service ("" = server)
  bool json = false;
};

std::shared_ptr<grpc::Channel> channel(const ClientOptions& o) { return make_channel(o.conn); }

void set_deadline(grpc::ClientContext& ctx, const ClientOptions& o, double seconds) { prepare_call(ctx, o.conn, seconds); }

int fail(const grpc::Status& s, const ClientOptions& o) {
  throw core::Error("RPC to " + o.conn.addr + " failed: " + std::to_string(static_cast<int>(s.error_code())) + " " +
                    s.error_message());
}

const char* finish_name(pb::FinishReason r) {
  switch (r) {
    case pb::FINISH_REASON_LENGTH: return "length";
    case pb::FINISH_REASON_EOS: return "eos";
    case pb::FINISH_REASON_STOP: return "stop";
    case pb::FINISH_REASON_CONTEXT: return "context";
    default: return "unspecified";
  }
}

pb::GenerationOptions options_of(const ClientOptions& o) {
  pb::GenerationOptions g;
  g.set_max_tokens(o.max_tokens);
  for (const auto& s : o.stop) g.add_stop(s);
  g.set_logprobs(o.logprobs);
  g.set_ignore_eos(o.ignore_eos);
  if (o.temperature_set) g.mutable_sampling()->set_temperature(o.temperature);
  if (o.top_k >= 0) g.mutable_sampling()->set_top_k(o.top_k);
  if (o.seed >= 0) g.mutable_sampling()->set_seed(static_cast<uint64_t>(o.seed));
  return g;
}

int run_stream(const ClientOptions& o, bool chat) {
  auto stub = pb::Inference::NewStub(channel(o));
  grpc::ClientContext ctx;
  set_deadline(ctx, o, o.timeout_s);
  std::unique_ptr<grpc::ClientReader<pb::GenerateResponse>> reader;
  if (chat) {
    pb::ChatRequest req;
    if (!o.system.empty()) {
      auto* m = req.add_messages();
      m->set_role("system");
      m->set_content(o.system);
    }
    auto* m = req.add_messages();
    m->set_role("user");
    m->set_content(o.text);
    *req.mutable_options() = options_of(o);
    reader = stub->Chat(&ctx, req);
  } else {
    pb::GenerateRequest req;
    req.set_prompt(o.text);
    *req.mutable_options() = options_of(o);
    reader = stub->Generate(&ctx, req);
  }
  const auto t0 = Clock::now();
  double ttft = -1;
  std::string text;
  nlohmann::json ids = nlohmann::json::array();
  pb::GenerateResponse msg;
  pb::FinalInfo final_info;
  while (reader->Read(&msg)) {
    if (ttft < 0 && msg.tokens_size() > 0) ttft = std::chrono::duration<double>(Clock::now() - t0).count();
    for (const auto& t : msg.tokens()) ids.push_back(t.token_id());
    text += msg.text();
    if (!o.json) {
      std::fwrite(msg.text().data(), 1, msg.text().size(), stdout);
      std::fflush(stdout);
    }
    if (msg.has_final()) final_info = msg.final();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    if (!o.json) std::fputc('\n', stdout);
    return fail(s, o);
  }
  const double total = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto& t = final_info.timings();
  if (o.json) {
    print_json({{"text", text},
                {"output_ids", ids},
                {"finish_reason", finish_name(final_info.finish_reason())},
                {"seed", final_info.seed()},
                {"timings",
                 {{"prompt_tokens", final_info.prompt_tokens()},
                  {"generated_tokens", final_info.generated_tokens()},
                  {"queue_s", t.queue_seconds()},
                  {"time_to_first_token_s", t.time_to_first_token_seconds()},
                  {"prefill_tokens_per_s", t.prefill_tokens_per_second()},
                  {"decode_tokens_per_s", t.decode_tokens_per_second()},
                  {"client_total_s", total},
                  {"client_time_to_first_token_s", ttft}}}});
  } else {
    std::fprintf(stderr, "\n\n[%d prompt tokens: %.1f tok/s prefill | %d generated: %.1f tok/s decode | first token %.0f ms | %s]\n",
                 final_info.prompt_tokens(), t.prefill_tokens_per_second(), final_info.generated_tokens(),
                 t.decode_tokens_per_second(), t.time_to_first_token_seconds() * 1000, finish_name(final_info.finish_reason()));
  }
  return 0;
}

int run_health(const ClientOptions& o) {
  auto stub = grpc::health::v1::Health::NewStub(channel(o));
  const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.wait_s * 1000));
  for (;;) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(o.service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    set_deadline(ctx, o, o.timeout_s > 0 ? o.timeout_s : 2.0);
    grpc::Status s = stub->Check(&ctx, req, &resp);
    const bool serving = s.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
    if (serving || Clock::now() >= until) {
      const std::string state = s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
                                       : "UNREACHABLE (" + s.error_message() + ")";
      if (o.json) print_json({{"service", o.service}, {"status", state}});
      else std::printf("%s\n", state.c_str());
      return serving ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int run_services(const ClientOptions& o) {
  namespace rf = grpc::reflection::v1alpha;
  auto stub = rf::ServerReflection::NewStub(channel(o));
  grpc::ClientContext ctx;
  set_deadline(ctx, o, o.timeout_s > 0 ? o.timeout_s : 5.0);
  auto stream = stub->ServerReflectionInfo(&ctx);
  rf::ServerReflectionRequest req;
  req.set_list_services("");
  if (!stream->Write(req)) return fail(stream->Finish(), o);
  stream->WritesDone();
  rf::ServerReflectionResponse resp;
  nlohmann::json names = nlohmann::json::array();
  while (stream->Read(&resp)) {
    if (resp.has_error_response()) throw core::Error("reflection error: " + resp.error_response().error_message());
    for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  }
  if (grpc::Status s = stream->Finish(); !s.ok()) return fail(s, o);
  if (o.json) print_json({{"services", names}});
  else
    for (const auto& n : names) std::printf("%s\n", n.get<std::string>().c_str());
  return 0;
}

int run_info(const ClientOptions& o) {
  auto stub = pb::Inference::NewStub(channel(o));
  grpc::ClientContext ctx;
  set_deadline(ctx, o, o.timeout_s > 0 ? o.timeout_s : 5.0);
  pb::ModelInfo info;
  if (grpc::Status s = stub->GetModelInfo(&ctx, pb::GetModelInfoRequest(), &info); !s.ok()) return fail(s, o);
  nlohmann::json mix = nlohmann::json::array(), stages = nlohmann::json::array();
  for (const auto& q : info.quant_mix()) mix.push_back({{"type", q.type()}, {"tensors", q.tensors()}, {"bytes", q.bytes()}});
  for (const auto& s : info.stages())
    stages.push_back({{"worker", s.worker()}, {"address", s.address()}, {"layer_begin", s.layer_begin()},
                      {"layer_end", s.layer_end()}, {"head", s.head()}, {"device", s.device()},
                      {"memory", s.memory()}, {"weight_bytes", s.weight_bytes()}, {"kv_bytes", s.kv_bytes()},
                      {"pid", s.pid()}, {"metrics_url", s.metrics_url()}, {"up", s.up()}, {"model_path", s.model_path()}});
  print_json({{"name", info.name()}, {"architecture", info.architecture()}, {"path", info.path()},
              {"n_layer", info.n_layer()}, {"n_embd", info.n_embd()}, {"n_head", info.n_head()},
              {"n_head_kv", info.n_head_kv()}, {"n_vocab", info.n_vocab()}, {"context", info.context()},
              {"max_sequences", info.max_sequences()}, {"kv_type_k", info.kv_type_k()}, {"kv_type_v", info.kv_type_v()},
              {"wire_type", info.wire_type()}, {"file_bytes", info.file_bytes()}, {"quant_mix", mix}, {"stages", stages}});
  return 0;
}

void add_common(CLI::App& cmd, ClientOptions& o) {
  add_connection_options(cmd, o.conn);
  cmd.add_option("--timeout", o.timeout_s, "RPC deadline in seconds (0: none)");
  cmd.add_flag("--json", o.json, "one JSON document on stdout");
}

void add_generation(CLI::App& cmd, ClientOptions& o) {
  cmd.add_option("text", o.text, "prompt (the user message for chat)")->required();
  cmd.add_option("-n,--max-tokens", o.max_tokens, "tokens to generate (-1: until the context is full)");
  cmd.add_option("--temp", o.temperature, "temperature (0: greedy)")->each([&o](const std::string&) { o.temperature_set = true; });
  cmd.add_option("--top-k", o.top_k, "top-k (0: off)");
  cmd.add_option("-s,--seed", o.seed, "random seed");
  cmd.add_option("--stop", o.stop, "stop string (repeatable)");
  cmd.add_option("--logprobs", o.logprobs, "return the n best alternatives per token (0..20)");
  cmd.add_flag("--ignore-eos", o.ignore_eos, "keep generating past end-of-generation tokens");
}

}  // namespace

void register_client(CLI::App& app, Action& action) {
  auto o = std::make_shared<ClientOptions>();
  auto* client = app.add_subcommand("client", "talk to a running coordinator over gRPC");
  client->require_subcommand(1);
  auto* gen = client->add_subcommand("generate", "stream a completion of TEXT");
  add_common(*gen, *o);
  add_generation(*gen, *o);
  gen->callback([o, &action] { action = [o] { return run_stream(*o, false); }; });
  auto* chat = client->add_subcommand("chat", "stream the assistant's answer to TEXT (chat template)");
  add_common(*chat, *o);
  add_generation(*chat, *o);
  chat->add_option("--system", o->system, "system message");
  chat->callback([o, &action] { action = [o] { return run_stream(*o, true); }; });
  auto* health = client->add_subcommand("health", "grpc.health.v1 Check; exit 0 only when SERVING");
  add_common(*health, *o);
  health->add_option("--service", o->service, "service name (default: the whole server)");
  health->add_option("--wait", o->wait_s, "keep asking up to this many seconds for SERVING");
  health->callback([o, &action] { action = [o] { return run_health(*o); }; });
  auto* services = client->add_subcommand("services", "list the server's services (reflection, like grpcurl list)");
  add_common(*services, *o);
  services->callback([o, &action] { action = [o] { return run_services(*o); }; });
  auto* info = client->add_subcommand("info", "model, split and memory per worker (GetModelInfo) as JSON");
  add_common(*info, *o);
  info->callback([o, &action] { action = [o] { return run_info(*o); }; });
  register_client_bench(*client, action);
}

}  // namespace tandem::cli
