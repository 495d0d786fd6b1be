#include "launcher/port_allocator.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace modelgate::launcher {
namespace {

// A TCP socket on 127.0.0.1, closed when the object goes away.
class Socket {
 public:
  Socket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  bool bind(std::uint16_t port, bool reuse_address) {
    if (reuse_address) {
      int on = 1;
      ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    return ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }

  bool listen() { return ::listen(fd_, 4) == 0; }

 private:
  int fd_;
};

// Finds `count` consecutive ports that bind on 127.0.0.1 right now. The
// search starts at a point derived from the process id, above the default
// ephemeral range (32768-60999), so that parallel test runs and outgoing
// connections rarely meet it.
std::optional<config::PortRange> find_free_range(int count) {
  int start = 61000 + static_cast<int>(::getpid() % 4000);
  for (int base = start; base + count - 1 <= 65535; base += count) {
    bool all_free = true;
    for (int port = base; port < base + count && all_free; ++port) {
      Socket probe;
      all_free = probe.bind(static_cast<std::uint16_t>(port), true);
    }
    if (all_free) {
      return config::PortRange{static_cast<std::uint16_t>(base),
                               static_cast<std::uint16_t>(base + count - 1)};
    }
  }
  return std::nullopt;
}

bool in_range(std::uint16_t port, config::PortRange range) {
  return port >= range.first && port <= range.last;
}

class PortAllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<config::PortRange> found = find_free_range(5);
    ASSERT_TRUE(found.has_value()) << "no 5 consecutive free ports above 61000";
    range_ = *found;
  }

  config::PortRange range_;
};

TEST_F(PortAllocatorTest, AllocatesDistinctPortsInRange) {
  PortAllocator allocator("127.0.0.1", range_);
  std::set<std::uint16_t> seen;

  for (int i = 0; i < 5; ++i) {
    std::optional<std::uint16_t> port = allocator.allocate();
    ASSERT_TRUE(port.has_value()) << "allocation " << i << " of 5";
    EXPECT_TRUE(in_range(*port, range_))
        << "port " << *port << " outside " << range_.first << "-" << range_.last;
    EXPECT_TRUE(seen.insert(*port).second) << "port " << *port << " handed out twice";
  }
}

TEST_F(PortAllocatorTest, ExhaustedRangeReturnsNullopt) {
  PortAllocator allocator("127.0.0.1", range_);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(allocator.allocate().has_value()) << "allocation " << i << " of 5";
  }

  std::optional<std::uint16_t> extra = allocator.allocate();

  EXPECT_FALSE(extra.has_value()) << "sixth allocation returned port " << extra.value_or(0);
}

TEST_F(PortAllocatorTest, ReleaseMakesPortAvailable) {
  PortAllocator allocator("127.0.0.1", range_);
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < 5; ++i) {
    std::optional<std::uint16_t> port = allocator.allocate();
    ASSERT_TRUE(port.has_value()) << "allocation " << i << " of 5";
    ports.push_back(*port);
  }

  allocator.release(ports[2]);
  std::optional<std::uint16_t> again = allocator.allocate();

  ASSERT_TRUE(again.has_value()) << "allocation after releasing " << ports[2];
  EXPECT_EQ(*again, ports[2]) << "the only released port";
  EXPECT_FALSE(allocator.allocate().has_value()) << "allocation with the range full again";
}

TEST_F(PortAllocatorTest, RotatesBeforeReusingReleasedPort) {
  PortAllocator allocator("127.0.0.1", range_);
  std::optional<std::uint16_t> first = allocator.allocate();
  ASSERT_TRUE(first.has_value());

  allocator.release(*first);
  std::optional<std::uint16_t> second = allocator.allocate();

  ASSERT_TRUE(second.has_value());
  EXPECT_NE(*second, *first) << "a port just released is handed out again at once";
}

TEST_F(PortAllocatorTest, ReleaseOfUnknownPortIsNoOp) {
  PortAllocator allocator("127.0.0.1", range_);

  allocator.release(static_cast<std::uint16_t>(range_.last + 1));
  allocator.release(range_.first);

  int allocated = 0;
  while (allocator.allocate().has_value()) {
    ++allocated;
    ASSERT_LE(allocated, 5) << "more ports than the range holds";
  }
  EXPECT_EQ(allocated, 5) << "ports allocated after releasing ports never allocated";
}

TEST_F(PortAllocatorTest, SkipsPortWithListeningSocket) {
  std::uint16_t listening_port = static_cast<std::uint16_t>(range_.first + 1);
  Socket listener;
  ASSERT_TRUE(listener.bind(listening_port, false)) << "bind 127.0.0.1:" << listening_port;
  ASSERT_TRUE(listener.listen()) << "listen on " << listening_port;
  PortAllocator allocator("127.0.0.1", range_);

  std::vector<std::uint16_t> ports;
  while (std::optional<std::uint16_t> port = allocator.allocate()) {
    ports.push_back(*port);
    ASSERT_LE(ports.size(), 5u) << "more ports than the range holds";
  }

  EXPECT_EQ(ports.size(), 4u) << "ports allocated with one of 5 taken";
  for (std::uint16_t port : ports) {
    EXPECT_NE(port, listening_port) << "allocated the port the test listens on";
  }
}

TEST_F(PortAllocatorTest, SkipsPortBoundOnAnyAddress) {
  std::uint16_t listening_port = range_.first;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = htons(listening_port);
  bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
               ::listen(fd, 4) == 0;
  if (!bound) {
    ::close(fd);
    GTEST_SKIP() << "port " << listening_port << " does not bind on 0.0.0.0";
  }
  PortAllocator allocator("127.0.0.1", range_);

  std::optional<std::uint16_t> port = allocator.allocate();

  ::close(fd);
  ASSERT_TRUE(port.has_value());
  EXPECT_NE(*port, listening_port) << "allocated a port that a socket on 0.0.0.0 listens on";
}

TEST_F(PortAllocatorTest, InvalidAddressAllocatesNothing) {
  PortAllocator allocator("not-an-address", range_);

  std::optional<std::uint16_t> port = allocator.allocate();

  EXPECT_FALSE(port.has_value()) << "allocated port " << port.value_or(0)
                                 << " for an invalid address";
}

TEST_F(PortAllocatorTest, AllocatesOnIpv6Loopback) {
  PortAllocator allocator("::1", range_);

  std::optional<std::uint16_t> port = allocator.allocate();

  if (!port.has_value()) {
    GTEST_SKIP() << "no port of " << range_.first << "-" << range_.last << " binds on ::1";
  }
  EXPECT_TRUE(in_range(*port, range_)) << "port " << *port;
}

TEST_F(PortAllocatorTest, ReserveSkipsBindCheck) {
  PortAllocator allocator("127.0.0.1", range_);
  Socket listener;
  ASSERT_TRUE(listener.bind(range_.first, false)) << "port " << range_.first;

  EXPECT_TRUE(allocator.reserve(range_.first)) << "a port that an adopted instance holds";
  EXPECT_FALSE(allocator.reserve(range_.first)) << "the same port twice";
  std::optional<std::uint16_t> next = allocator.allocate();
  ASSERT_TRUE(next.has_value());
  EXPECT_NE(*next, range_.first) << "allocate() handed out a reserved port";
}

TEST_F(PortAllocatorTest, ReserveRejectsPortOutsideRange) {
  PortAllocator allocator("127.0.0.1", range_);

  EXPECT_FALSE(allocator.reserve(static_cast<std::uint16_t>(range_.last + 1)));
  EXPECT_FALSE(allocator.reserve(static_cast<std::uint16_t>(range_.first - 1)));
}

TEST_F(PortAllocatorTest, SinglePortRange) {
  config::PortRange single{range_.first, range_.first};
  PortAllocator allocator("127.0.0.1", single);

  std::optional<std::uint16_t> first = allocator.allocate();
  std::optional<std::uint16_t> second = allocator.allocate();

  ASSERT_TRUE(first.has_value()) << "allocation from a single-port range";
  EXPECT_EQ(*first, range_.first) << "the only port";
  EXPECT_FALSE(second.has_value()) << "second allocation from a single-port range";
}

TEST_F(PortAllocatorTest, ConcurrentAllocationsAreDistinct) {
  PortAllocator allocator("127.0.0.1", range_);
  std::mutex results_mutex;
  std::vector<std::uint16_t> results;

  auto worker = [&] {
    for (int i = 0; i < 5; ++i) {
      std::optional<std::uint16_t> port = allocator.allocate();
      if (port) {
        std::lock_guard lock(results_mutex);
        results.push_back(*port);
      }
    }
  };
  std::thread first(worker);
  std::thread second(worker);
  first.join();
  second.join();

  std::set<std::uint16_t> distinct(results.begin(), results.end());
  EXPECT_EQ(results.size(), 5u) << "allocations from 10 attempts on a 5-port range";
  EXPECT_EQ(distinct.size(), results.size()) << "distinct ports among the allocations";
}

class CheckPortRangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "modelgate-port-range-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
    directory_ = pattern;
    range_file_ = directory_ / "ip_local_port_range";
    std::ofstream file(range_file_);
    file << "32768\t60999\n";
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  std::filesystem::path directory_;
  std::filesystem::path range_file_;
};

TEST_F(CheckPortRangeTest, OverlapNamesBothRanges) {
  std::optional<std::string> problem = check_port_range({30000, 40000}, range_file_);

  ASSERT_TRUE(problem.has_value()) << "30000-40000 against 32768-60999";
  EXPECT_NE(problem->find("30000-40000"), std::string::npos) << "message: " << *problem;
  EXPECT_NE(problem->find("32768-60999"), std::string::npos) << "message: " << *problem;
}

TEST_F(CheckPortRangeTest, DetectsEveryOverlap) {
  const std::vector<config::PortRange> overlapping = {
      {40000, 41000}, {30000, 62000}, {32768, 32768}, {60999, 61000},
      {20000, 32768}, {60999, 65535}, {1, 65535},
  };
  for (config::PortRange range : overlapping) {
    EXPECT_TRUE(check_port_range(range, range_file_).has_value())
        << "range " << range.first << "-" << range.last;
  }
}

TEST_F(CheckPortRangeTest, AcceptsRangesOutside) {
  const std::vector<config::PortRange> outside = {
      {20000, 20999}, {1024, 32767}, {32767, 32767}, {61000, 65535}, {61000, 61000},
  };
  for (config::PortRange range : outside) {
    std::optional<std::string> problem = check_port_range(range, range_file_);
    EXPECT_FALSE(problem.has_value())
        << "range " << range.first << "-" << range.last << ": " << problem.value_or("");
  }
}

TEST_F(CheckPortRangeTest, MissingFileReturnsNullopt) {
  std::optional<std::string> problem =
      check_port_range({30000, 40000}, directory_ / "no-such-file");

  EXPECT_FALSE(problem.has_value()) << "problem: " << problem.value_or("");
}

TEST_F(CheckPortRangeTest, UnreadableContentReturnsNullopt) {
  std::filesystem::path file = directory_ / "garbage";
  std::ofstream(file) << "not numbers\n";

  std::optional<std::string> problem = check_port_range({30000, 40000}, file);

  EXPECT_FALSE(problem.has_value()) << "problem: " << problem.value_or("");
}

TEST_F(CheckPortRangeTest, ReadsSpaceSeparatedRange) {
  std::filesystem::path file = directory_ / "spaces";
  std::ofstream(file) << "10000 10999";

  std::optional<std::string> problem = check_port_range({10500, 10500}, file);

  ASSERT_TRUE(problem.has_value()) << "10500 against 10000-10999";
  EXPECT_NE(problem->find("10000-10999"), std::string::npos) << "message: " << *problem;
}

}  // namespace
}  // namespace modelgate::launcher
