#include "server/auth/api_key.hpp"

#include "server/auth/crypto.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace openstation::server::auth {
namespace {

using namespace std::chrono_literals;
using TimePoint = core::Clock::TimePoint;

const TimePoint kNow{std::chrono::seconds(1735689600)};

KeyRecord record_for(const GeneratedApiKey& key, std::string id = "key-1") {
  KeyRecord r;
  r.key_id = std::move(id);
  r.user_id = "user-1";
  r.username = "alice";
  r.name = "laptop";
  r.prefix = key.prefix;
  r.hash = key.hash;
  return r;
}

TEST(ApiKeyFormat, GeneratedKeysHaveTheDocumentedShape) {
  const auto key = generate_api_key();
  EXPECT_EQ(key.text.size(), kApiKeyLength);
  EXPECT_EQ(key.text.size(), 58u);
  EXPECT_EQ(key.text.rfind("sk-os-", 0), 0u);
  EXPECT_EQ(key.text.substr(6, 8), key.prefix);
  EXPECT_EQ(key.text[14], '-');
  EXPECT_EQ(key.prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789"),
            std::string::npos);
  EXPECT_EQ(key.text.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 15),
            std::string::npos);
  EXPECT_EQ(key.hash, sha256_hex(key.text));
  EXPECT_EQ(key.hash, hash_api_key(key.text));
}

TEST(ApiKeyFormat, GeneratedKeysAreUnique) {
  std::set<std::string> texts;
  std::set<std::string> prefixes;
  for (int i = 0; i < 1000; ++i) {
    const auto k = generate_api_key();
    texts.insert(k.text);
    prefixes.insert(k.prefix);
  }
  EXPECT_EQ(texts.size(), 1000u);
  EXPECT_EQ(prefixes.size(), 1000u);
}

TEST(ApiKeyParse, AcceptsBearerHeadersAndBareKeys) {
  const auto key = generate_api_key();
  for (const auto& text : {"Bearer " + key.text, "bearer " + key.text, "BEARER   " + key.text + " ",
                           key.text, "  " + key.text}) {
    const auto p = parse_api_key(text);
    ASSERT_TRUE(p) << text << ": " << p.error().message;
    EXPECT_EQ(p->key, key.text);
    EXPECT_EQ(p->prefix, key.prefix);
  }
}

TEST(ApiKeyParse, RefusesMalformedKeysWithoutEchoingTheSecret) {
  const auto key = generate_api_key();
  const std::string secret = key.text.substr(15);
  auto upper_prefix = key.text;
  upper_prefix[6] = 'A';
  auto bad_dash = key.text;
  bad_dash[14] = '_';
  auto bad_secret = key.text;
  bad_secret[20] = '-';
  for (const std::string& text :
       {std::string(), std::string("Bearer "), std::string("Bearer"), "Basic " + key.text,
        key.text.substr(1), key.text + "x", "sk-xx-" + key.text.substr(6), upper_prefix, bad_dash,
        bad_secret, std::string("sk-proj-abc"), key.text.substr(0, 57)}) {
    const auto p = parse_api_key(text);
    ASSERT_FALSE(p) << text;
    EXPECT_EQ(p.error().code, "auth.invalid_api_key") << text;
    EXPECT_EQ(p.error().category, core::Errc::unauthorized);
    EXPECT_EQ(p.error().message.find(secret), std::string::npos) << p.error().message;
  }
}

TEST(KeySnapshot, AuthenticatesAValidKey) {
  const auto key = generate_api_key();
  auto rec = record_for(key);
  rec.role = Role::admin;
  const KeySnapshot snap({rec});
  EXPECT_EQ(snap.size(), 1u);
  const auto p = snap.authenticate("Bearer " + key.text, kNow);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->user_id(), "user-1");
  EXPECT_EQ(p->key_id(), "key-1");
  EXPECT_EQ(p->username(), "alice");
  EXPECT_EQ(p->role(), Role::admin);
}

TEST(KeySnapshot, RefusesUnknownAndWrongSecretKeys) {
  const auto key = generate_api_key();
  const KeySnapshot snap({record_for(key)});
  // Unknown prefix.
  const auto other = generate_api_key();
  auto r = snap.authenticate("Bearer " + other.text, kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.invalid_api_key");
  // Known prefix, wrong secret.
  auto forged = key.text;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  r = snap.authenticate("Bearer " + forged, kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.invalid_api_key");
  EXPECT_NE(r.error().message.find("sk-os-" + key.prefix), std::string::npos);
  // Malformed.
  r = snap.authenticate("Bearer nope", kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.invalid_api_key");
  // An empty snapshot knows nothing.
  r = KeySnapshot().authenticate(key.text, kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.invalid_api_key");
}

TEST(KeySnapshot, ReportsRevokedDisabledAndExpiredKeys) {
  const auto revoked = generate_api_key();
  const auto disabled = generate_api_key();
  const auto expired = generate_api_key();
  const auto later = generate_api_key();
  auto r1 = record_for(revoked, "k-revoked");
  r1.revoked = true;
  auto r2 = record_for(disabled, "k-disabled");
  r2.user_disabled = true;
  auto r3 = record_for(expired, "k-expired");
  r3.expires_at = kNow;
  auto r4 = record_for(later, "k-later");
  r4.expires_at = kNow + 1s;
  const KeySnapshot snap({r1, r2, r3, r4});

  const auto code = [&](const std::string& text) {
    const auto r = snap.authenticate("Bearer " + text, kNow);
    if (r) return std::string("ok");
    EXPECT_EQ(r.error().category, core::Errc::unauthorized);
    return r.error().code;
  };
  EXPECT_EQ(code(revoked.text), "auth.key_revoked");
  EXPECT_EQ(code(disabled.text), "auth.user_disabled");
  EXPECT_EQ(code(expired.text), "auth.key_expired");
  EXPECT_EQ(code(later.text), "ok");
  EXPECT_FALSE(snap.authenticate(later.text, kNow + 1s));
}

TEST(KeySnapshot, StatusIsRevealedOnlyToTheRightSecret) {
  const auto key = generate_api_key();
  auto rec = record_for(key);
  rec.revoked = true;
  const KeySnapshot snap({rec});
  auto forged = key.text;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  const auto r = snap.authenticate(forged, kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.invalid_api_key");
}

TEST(KeySnapshot, KeepsKeysThatShareAPrefix) {
  const auto a = generate_api_key();
  auto b = generate_api_key();
  b.text = "sk-os-" + a.prefix + b.text.substr(14);
  b.prefix = a.prefix;
  b.hash = hash_api_key(b.text);
  const KeySnapshot snap({record_for(a, "a"), record_for(b, "b")});
  ASSERT_TRUE(snap.authenticate(a.text, kNow));
  ASSERT_TRUE(snap.authenticate(b.text, kNow));
  EXPECT_EQ(snap.authenticate(a.text, kNow)->key_id(), "a");
  EXPECT_EQ(snap.authenticate(b.text, kNow)->key_id(), "b");
}

TEST(KeySnapshot, AllowListLimitsModels) {
  const auto open = generate_api_key();
  const auto limited = generate_api_key();
  auto r2 = record_for(limited, "limited");
  r2.allowed_models = {"qwen-7b", "deepseek-r1", "qwen-7b"};
  const KeySnapshot snap({record_for(open, "open"), r2});
  const auto p_open = snap.authenticate(open.text, kNow);
  const auto p_lim = snap.authenticate(limited.text, kNow);
  ASSERT_TRUE(p_open);
  ASSERT_TRUE(p_lim);
  EXPECT_TRUE(allows_model(*p_open, "anything"));
  EXPECT_TRUE(allows_model(*p_lim, "qwen-7b"));
  EXPECT_TRUE(allows_model(*p_lim, "deepseek-r1"));
  EXPECT_FALSE(allows_model(*p_lim, "Qwen-7b"));
  EXPECT_FALSE(allows_model(*p_lim, "llama"));
  EXPECT_EQ(p_lim->key->allowed_models.size(), 2u);
  EXPECT_FALSE(allows_model(Principal{}, "qwen-7b"));
}

TEST(AuthMemo, GivesTheSnapshotsAnswerAndRechecksStatusOnEveryHit) {
  const auto key = generate_api_key();
  auto rec = record_for(key);
  rec.expires_at = kNow + 1s;
  auto snap = std::make_shared<const KeySnapshot>(std::vector<KeyRecord>{rec});
  AuthMemo memo;
  const auto first = memo.authenticate(snap, "Bearer " + key.text, kNow);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->key_id(), "key-1");
  // A hit is the same record; expiry is still checked at the request's time.
  const auto again = memo.authenticate(snap, "Bearer " + key.text, kNow);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->key.get(), first->key.get());
  const auto late = memo.authenticate(snap, "Bearer " + key.text, kNow + 1s);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, "auth.key_expired");

  // A new snapshot that revokes the key: the memo forgets the old one.
  rec.revoked = true;
  auto revoked = std::make_shared<const KeySnapshot>(std::vector<KeyRecord>{rec});
  const auto refused = memo.authenticate(revoked, "Bearer " + key.text, kNow);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "auth.key_revoked");
  // An empty snapshot (the key deleted): unknown.
  auto empty = std::make_shared<const KeySnapshot>();
  EXPECT_EQ(memo.authenticate(empty, "Bearer " + key.text, kNow).error().code,
            "auth.invalid_api_key");
}

TEST(AuthMemo, NeverRemembersAFailureAndKeepsManyKeysApart) {
  const auto key = generate_api_key();
  auto snap = std::make_shared<const KeySnapshot>(std::vector<KeyRecord>{record_for(key)});
  AuthMemo memo;
  auto forged = key.text;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(memo.authenticate(snap, forged, kNow).error().code, "auth.invalid_api_key");
  }
  EXPECT_TRUE(memo.authenticate(snap, key.text, kNow));
  EXPECT_EQ(memo.authenticate(snap, forged, kNow).error().code, "auth.invalid_api_key");

  // More keys than entries: every one still authenticates as itself, evicted or not.
  std::vector<GeneratedApiKey> keys;
  std::vector<KeyRecord> records;
  for (std::size_t i = 0; i < AuthMemo::kEntries + 3; ++i) {
    keys.push_back(generate_api_key());
    records.push_back(record_for(keys.back(), "k" + std::to_string(i)));
  }
  auto many = std::make_shared<const KeySnapshot>(records);
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto r = memo.authenticate(many, "Bearer " + keys[i].text, kNow);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->key_id(), "k" + std::to_string(i));
    }
  }
}

TEST(KeySnapshotHolder, SwapsSnapshotsAtomically) {
  KeySnapshotHolder holder;
  ASSERT_NE(holder.load(), nullptr);
  EXPECT_EQ(holder.load()->size(), 0u);
  const auto key = generate_api_key();
  EXPECT_FALSE(holder.load()->authenticate(key.text, kNow));

  holder.store(std::make_shared<const KeySnapshot>(std::vector<KeyRecord>{record_for(key)}));
  const auto p = holder.load()->authenticate(key.text, kNow);
  ASSERT_TRUE(p);

  // Revocation takes effect with the next snapshot; an earlier principal stays readable.
  auto revoked = record_for(key);
  revoked.revoked = true;
  holder.store(std::make_shared<const KeySnapshot>(std::vector<KeyRecord>{revoked}));
  const auto r = holder.load()->authenticate(key.text, kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "auth.key_revoked");
  EXPECT_EQ(p->username(), "alice");

  holder.store(nullptr);
  ASSERT_NE(holder.load(), nullptr);
  EXPECT_EQ(holder.load()->size(), 0u);
}

TEST(KeySnapshotHolder, ReadersAndAWriterRunConcurrently) {
  KeySnapshotHolder holder;
  const auto key = generate_api_key();
  const auto snap_on = std::make_shared<const KeySnapshot>(std::vector<KeyRecord>{record_for(key)});
  const auto snap_off = std::make_shared<const KeySnapshot>();
  std::vector<std::thread> readers;
  std::atomic<int> oks{0};
  std::atomic<int> fails{0};
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        const auto r = holder.load()->authenticate(key.text, kNow);
        (r ? oks : fails).fetch_add(1);
        if (!r) {
          EXPECT_EQ(r.error().code, "auth.invalid_api_key");
        }
      }
    });
  }
  for (int i = 0; i < 2000; ++i) holder.store(i % 2 ? snap_on : snap_off);
  for (auto& t : readers) t.join();
  EXPECT_EQ(oks + fails, 6000);
}

}  // namespace
}  // namespace openstation::server::auth
