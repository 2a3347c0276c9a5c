#include "tests/integration/service_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"

namespace tandem::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string build_dir() { return TANDEM_BUILD_DIR; }

Process::Process(std::vector<std::string> argv) {
  static std::atomic<int> counter{0};
  log_path_ = "/tmp/tandem-it-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".log";
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fds[1], 1);
    const int err = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (err >= 0) ::dup2(err, 2);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  out_fd_ = fds[0];
}

Process::~Process() {
  if (alive()) terminate();
  if (out_fd_ >= 0) ::close(out_fd_);
  ::unlink(log_path_.c_str());
}

std::optional<std::string> Process::wait_line(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    size_t nl;
    while ((nl = buf_.find('\n')) != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      if (line.find(needle) != std::string::npos) return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char tmp[4096];
    const ssize_t n = ::read(out_fd_, tmp, sizeof tmp);
    if (n <= 0) return std::nullopt;  // the process closed stdout (exited)
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

bool Process::alive() {
  if (pid_ <= 0) return false;
  int st;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

double Process::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return 0;
  const auto t0 = Clock::now();
  ::kill(pid_, SIGTERM);
  while (Clock::now() - t0 < grace) {
    int st;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return std::chrono::duration<double>(Clock::now() - t0).count();
    }
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid_, SIGKILL);
  int st;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
  return -1;
}

std::string Process::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Service::Service(const std::string& model, std::vector<std::string> extra, bool wait_for_serving,
                 std::vector<std::string> prefix) {
  std::vector<std::string> argv = std::move(prefix);
  for (const std::string& a : {build_dir() + "/tandem-coordinator", std::string("-m"), model, std::string("--listen"),
                               std::string("127.0.0.1:0"), std::string("--metrics"), std::string("127.0.0.1:0"),
                               std::string("--threads-gpu"), std::string("1"), std::string("--threads-cpu"),
                               std::string("1")})
    argv.push_back(a);
  argv.insert(argv.end(), extra.begin(), extra.end());
  proc_ = std::make_unique<Process>(argv);
  auto serving = proc_->wait_line("serving tandem.v1.Inference on ", 30s);
  if (!serving) throw std::runtime_error("coordinator did not start:\n" + proc_->log());
  const auto a = serving->find(" on ") + 4;
  addr_ = serving->substr(a, serving->find(' ', a) - a);
  auto metrics = proc_->wait_line("metrics on ", 10s);
  if (!metrics) throw std::runtime_error("coordinator printed no metrics URL:\n" + proc_->log());
  metrics_url_ = metrics->substr(metrics->find("http://"));
  if (wait_for_serving && !wait_serving(60s)) throw std::runtime_error("coordinator never became SERVING:\n" + proc_->log());
}

std::shared_ptr<grpc::Channel> Service::channel() { return grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()); }

std::unique_ptr<tandem::v1::Inference::Stub> Service::stub() { return tandem::v1::Inference::NewStub(channel()); }

std::string health_status(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 2s);
  const grpc::Status s = stub->Check(&ctx, req, &resp);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return "NOT_FOUND";
  if (!s.ok()) return "UNREACHABLE";
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}

std::string Service::health(const std::string& service) { return health_status(channel(), service); }

bool Service::wait_serving(std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (health() == "SERVING") return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

AttachedWorkers::AttachedWorkers(const std::string& tag, std::vector<std::string> prefix)
    : dir_(::testing::TempDir() + "tandem-" + tag + "-" + std::to_string(::getpid())), prefix_(std::move(prefix)) {
  std::filesystem::create_directories(dir_);
  gpu_ = start("gpu");
  cpu_ = start("cpu");
}

AttachedWorkers::~AttachedWorkers() {
  gpu_.reset();
  cpu_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::unique_ptr<Process> AttachedWorkers::start(const std::string& role) {
  std::vector<std::string> argv = prefix_;
  for (const std::string& a : {build_dir() + "/tandem-" + role + "-worker", std::string("--listen"), address(role),
                               std::string("--metrics"), std::string("127.0.0.1:0"), std::string("--threads"),
                               std::string("1")})
    argv.push_back(a);
  auto p = std::make_unique<Process>(argv);
  if (!p->wait_line("control on", 20s)) throw std::runtime_error(role + " worker did not start:\n" + p->log());
  return p;
}

std::vector<std::string> AttachedWorkers::coordinator_args() const {
  return {"--attach-gpu", address("gpu"), "--attach-cpu", address("cpu")};
}

void AttachedWorkers::restart(const std::string& role) {
  std::unique_ptr<Process>& slot = role == "gpu" ? gpu_ : cpu_;
  slot.reset();
  std::filesystem::remove(dir_ + "/" + role + ".sock");  // a dead predecessor's socket
  slot = start(role);
}

std::string http_get(const std::string& url) {
  // url: http://HOST:PORT/path
  const auto hp = url.substr(7, url.find('/', 7) - 7);
  const auto path = url.substr(url.find('/', 7));
  const int port = std::stoi(hp.substr(hp.rfind(':') + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, hp.substr(0, hp.rfind(':')).c_str(), &sa.sin_addr);
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + hp + "\r\n\r\n";
    (void)::write(fd, req.data(), req.size());
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const auto hdr_end = body.find("\r\n\r\n");
  return hdr_end == std::string::npos ? "" : body.substr(hdr_end + 4);
}

std::optional<double> metric(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

tandem::v1::GenerateRequest greedy_request(const std::string& prompt, int max_tokens) {
  tandem::v1::GenerateRequest req;
  req.set_prompt(prompt);
  req.mutable_options()->set_max_tokens(max_tokens);
  req.mutable_options()->mutable_sampling()->set_temperature(0);
  return req;
}

StreamResult generate(tandem::v1::Inference::Stub& stub, const tandem::v1::GenerateRequest& req,
                      std::chrono::milliseconds deadline) {
  StreamResult r;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  auto reader = stub.Generate(&ctx, req);
  tandem::v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    for (const auto& t : msg.tokens()) {
      r.ids.push_back(t.token_id());
      r.tokens.push_back(t);
    }
    r.text += msg.text();
    if (msg.has_final()) r.final_info = msg.final();
  }
  r.status = reader->Finish();
  return r;
}

std::vector<int32_t> reference_ids(const std::string& model, const std::string& prompt, int max_tokens, int ctx) {
  // The prompt goes through a file to avoid any shell quoting.
  const std::string pfile = "/tmp/tandem-it-prompt-" + std::to_string(::getpid());
  std::ofstream(pfile) << prompt;
  const std::string cmd = build_dir() + "/tandem generate -t 1 --temp 0 --json -m '" + model + "' -c " +
                          std::to_string(ctx) + " -n " + std::to_string(max_tokens) + " -p \"$(cat " + pfile + ")\"";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  ::unlink(pfile.c_str());
  auto j = nlohmann::json::parse(out);
  return j["output_ids"].get<std::vector<int32_t>>();
}

}  // namespace tandem::test
