// The public port's security, with real certificates (made by openssl here)
// and a real coordinator: TLS, mutual TLS, bearer tokens, the plaintext
// health port for probes, and clear refusals of bad settings.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/service_harness.h"
#include "tests/unit/test_support.h"

namespace tandem::test {
namespace {

namespace pb = tandem::v1;
using namespace std::chrono_literals;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command; returns its exit status and fills `out` with stdout+stderr.
int run(const std::string& cmd, std::string* out = nullptr) {
  std::string text;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int st = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A CA, a server certificate for localhost / 127.0.0.1, a client certificate
// from the same CA, and a client certificate from another CA.
class Pki {
 public:
  Pki() : dir_(::testing::TempDir() + "tandem-pki-" + std::to_string(::getpid())) {
    std::filesystem::create_directories(dir_);
    const std::string d = dir_;
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::ofstream(d + "/san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    const std::string script =
        "set -e; cd " + d + "; " +
        "openssl req -x509 " + key + " -keyout ca.key -out ca.pem -days 2 -subj /CN=tandem-test-ca; " +
        "openssl req -x509 " + key + " -keyout rogue-ca.key -out rogue-ca.pem -days 2 -subj /CN=rogue-ca; " +
        "openssl req " + key + " -keyout server.key -out server.csr -subj /CN=localhost; " +
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "-extfile san.ext; " +
        "openssl req " + key + " -keyout client.key -out client.csr -subj /CN=tandem-client; " +
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2; " +
        "openssl req " + key + " -keyout rogue.key -out rogue.csr -subj /CN=rogue-client; " +
        "openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -out rogue.pem -days 2";
    std::string out;
    ok_ = run("bash -c '" + script + "'", &out) == 0;
    if (!ok_) why_ = out;
  }
  ~Pki() { std::filesystem::remove_all(dir_); }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  std::string path(const std::string& f) const { return dir_ + "/" + f; }
  std::string pem(const std::string& f) const { return slurp(path(f)); }

 private:
  std::string dir_;
  bool ok_ = false;
  std::string why_;
};

std::shared_ptr<grpc::Channel> tls_channel(const std::string& addr, const Pki& pki, const std::string& client) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.pem("ca.pem");
  if (!client.empty()) {
    ssl.pem_cert_chain = pki.pem(client + ".pem");
    ssl.pem_private_key = pki.pem(client + ".key");
  }
  return grpc::CreateChannel(addr, grpc::SslCredentials(ssl));
}

grpc::Status tokenize(const std::shared_ptr<grpc::Channel>& ch, const std::string& token) {
  auto stub = pb::Inference::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  pb::TokenizeRequest req;
  req.set_text("Hello");
  pb::TokenizeResponse resp;
  return stub->Tokenize(&ctx, req, &resp);
}

struct Coordinator {
  std::unique_ptr<Process> proc;
  std::string addr, health_addr, metrics_url;
};

Coordinator start(const std::string& model, std::vector<std::string> extra) {
  std::vector<std::string> argv = {build_dir() + "/tandem-coordinator", "-m", model, "--listen", "127.0.0.1:0",
                                   "--metrics", "127.0.0.1:0", "--health-listen", "127.0.0.1:0", "--gpu-layers", "10",
                                   "-c", "256", "--threads-gpu", "1", "--threads-cpu", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Coordinator c;
  c.proc = std::make_unique<Process>(argv);
  auto addr_of = [](const std::string& line) {
    const auto a = line.find(" on ") + 4;
    return line.substr(a, line.find(' ', a) - a);
  };
  auto serving = c.proc->wait_line("serving tandem.v1.Inference on ", 30s);
  if (!serving) throw std::runtime_error("coordinator did not start:\n" + c.proc->log());
  c.addr = addr_of(*serving);
  auto health = c.proc->wait_line("health on ", 10s);
  if (!health) throw std::runtime_error("no health port:\n" + c.proc->log());
  c.health_addr = addr_of(*health);
  auto metrics = c.proc->wait_line("metrics on ", 10s);
  if (!metrics) throw std::runtime_error("no metrics URL:\n" + c.proc->log());
  c.metrics_url = metrics->substr(metrics->find("http://"));
  auto plain = grpc::CreateChannel(c.health_addr, grpc::InsecureChannelCredentials());
  for (int i = 0; i < 600 && health_status(plain, "") != "SERVING"; ++i) std::this_thread::sleep_for(100ms);
  return c;
}

TEST(ApiSecurity, MutualTlsAndBearerTokens) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Pki pki;
  ASSERT_TRUE(pki.ok()) << pki.why();
  std::ofstream(pki.path("tokens")) << "# one per line\n\ns3cret-token-a\n  s3cret-token-b  \n";
  std::filesystem::permissions(pki.path("tokens"), std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  Coordinator c = start(model, {"--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server.key"),
                                "--tls-client-ca", pki.path("ca.pem"), "--auth-token-file", pki.path("tokens")});
  // Probes: the plaintext health port answers without credentials.
  EXPECT_EQ(health_status(grpc::CreateChannel(c.health_addr, grpc::InsecureChannelCredentials()), ""), "SERVING");
  EXPECT_EQ(health_status(grpc::CreateChannel(c.health_addr, grpc::InsecureChannelCredentials()), "liveness"), "SERVING");

  // Transport: plaintext, TLS without a client certificate, and a
  // certificate from another CA never reach the service.
  EXPECT_EQ(tokenize(grpc::CreateChannel(c.addr, grpc::InsecureChannelCredentials()), "s3cret-token-a").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(tokenize(tls_channel(c.addr, pki, ""), "s3cret-token-a").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(tokenize(tls_channel(c.addr, pki, "rogue"), "s3cret-token-a").error_code(), grpc::StatusCode::UNAVAILABLE);

  // Through mTLS: the token decides.
  auto ch = tls_channel(c.addr, pki, "client");
  const grpc::Status missing = tokenize(ch, "");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(missing.error_message().find("authorization: Bearer"), std::string::npos) << missing.error_message();
  EXPECT_EQ(tokenize(ch, "s3cret-token-").error_code(), grpc::StatusCode::UNAUTHENTICATED);  // a prefix
  EXPECT_EQ(tokenize(ch, "s3cret-token-ab").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(tokenize(ch, "s3cret-token-a").ok());
  EXPECT_TRUE(tokenize(ch, "s3cret-token-b").ok());  // surrounding blanks in the file are not part of it
  EXPECT_EQ(health_status(ch, ""), "SERVING");        // health needs no token on the API port either

  // A stream without a token is refused and counted; with one it runs.
  {
    auto stub = pb::Inference::NewStub(ch);
    const auto refused = generate(*stub, greedy_request("Hello", 4));
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // The CLI, as a user runs it (docs/operations.md shows the same with grpcurl).
  const std::string cli = build_dir() + "/tandem client generate --addr " + c.addr + " --tls-ca " + pki.path("ca.pem") +
                          " --tls-cert " + pki.path("client.pem") + " --tls-key " + pki.path("client.key") +
                          " -n 4 --temp 0 'The capital of France is'";
  std::string out;
  EXPECT_EQ(run(cli + " --token s3cret-token-a", &out), 0) << out;
  EXPECT_NE(run(cli + " --token wrong", &out), 0);
  EXPECT_NE(out.find("16"), std::string::npos) << "UNAUTHENTICATED (16) not named: " << out;
  EXPECT_EQ(run("TANDEM_TOKEN=s3cret-token-b " + cli, &out), 0) << out;

  const std::string body = http_get(c.metrics_url);
  EXPECT_GE(metric(body, "tandem_requests_total{outcome=\"unauthenticated\"}").value_or(0), 2) << body;
  EXPECT_GE(metric(body, "tandem_requests_total{outcome=\"ok\"}").value_or(0), 2) << body;
}

TEST(ApiSecurity, TlsWithTokensFromTheEnvironment) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Pki pki;
  ASSERT_TRUE(pki.ok()) << pki.why();
  ::setenv("TANDEM_AUTH_TOKENS", "tok-one, tok-two", 1);
  Coordinator c = start(model, {"--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server.key")});
  ::unsetenv("TANDEM_AUTH_TOKENS");
  auto ch = tls_channel(c.addr, pki, "");  // TLS without mTLS: no client certificate needed
  EXPECT_TRUE(tokenize(ch, "tok-two").ok());
  EXPECT_EQ(tokenize(ch, "tok-three").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(tokenize(grpc::CreateChannel(c.addr, grpc::InsecureChannelCredentials()), "tok-one").error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(ApiSecurity, BadSettingsAreRefusedByName) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(model);
  Pki pki;
  ASSERT_TRUE(pki.ok()) << pki.why();
  std::ofstream(pki.path("empty-tokens")) << "# nothing here\n\n";
  const std::string base = build_dir() + "/tandem-coordinator -m " + model +
                           " --listen 127.0.0.1:0 --metrics 127.0.0.1:0 --gpu-layers 0 -c 128 ";
  struct Case {
    std::string args, says;
  } cases[] = {
      {"--tls-cert " + pki.path("server.pem"), "--tls-cert and --tls-key go together"},
      {"--tls-cert /nonexistent.pem --tls-key " + pki.path("server.key"), "--tls-cert /nonexistent.pem: cannot read"},
      {"--tls-cert " + pki.path("san.ext") + " --tls-key " + pki.path("server.key"), "not a PEM file"},
      {"--tls-client-ca " + pki.path("ca.pem"), "--tls-client-ca needs --tls-cert"},
      {"--auth-token-file " + pki.path("empty-tokens"), "no token in it"},
      {"--auth-token-file /nonexistent-tokens", "--auth-token-file /nonexistent-tokens: cannot read"},
  };
  for (const Case& k : cases) {
    std::string out;
    const int rc = run("timeout 60 " + base + k.args, &out);
    EXPECT_EQ(rc, 1) << k.args << "\n" << out;
    EXPECT_NE(out.find(k.says), std::string::npos) << k.args << "\n" << out;
  }
}

}  // namespace
}  // namespace tandem::test
