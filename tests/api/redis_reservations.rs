//! The Redis limiter's reserved blocks of counts (src/ratelimit/redis/reserve.rs),
//! through the limiter itself on a private Redis: under concurrent load at two
//! instances, near the limit, as a window rolls over, and while Redis hangs.
//! They need the `redis-server` program: skipped by the default nextest profile.

mod needs_redis_server {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use clientele::ratelimit::{Decision, RateLimit, RateLimiter, RedisLimiter};
    use redis::aio::MultiplexedConnection;
    use tokio::task::JoinSet;

    use crate::rate_limit::{PrivateRedis, redis_server_available};
    use crate::support::{free_port, leave_room_in_window, left_in_window};

    /// The most counts one block reserves (`reserve::MAX_BLOCK`).
    const MAX_BLOCK: u64 = 1024;

    fn private_redis() -> PrivateRedis {
        assert!(redis_server_available(), "redis-server is not on PATH (needed to start a private Redis)");
        PrivateRedis::start(free_port())
    }

    /// A limiter of its own on `redis`, as each server instance has.
    fn instance(redis: &PrivateRedis) -> Arc<RateLimiter> {
        Arc::new(RateLimiter::with_redis(RedisLimiter::connect(&redis.url()).expect("redis url")))
    }

    async fn connect(redis: &PrivateRedis) -> MultiplexedConnection {
        let client = redis::Client::open(redis.url()).expect("redis url");
        client.get_multiplexed_async_connection().await.expect("connect to the private Redis")
    }

    /// `tasks` tasks at each of `instances` at once, each checking `key` `each` times in a row.
    async fn load(
        instances: &[&Arc<RateLimiter>],
        key: &str,
        limit: RateLimit,
        tasks: usize,
        each: usize,
    ) -> Vec<Decision> {
        let mut running = JoinSet::new();
        for limiter in instances {
            for _ in 0..tasks {
                let (limiter, key) = (Arc::clone(limiter), key.to_owned());
                running.spawn(async move {
                    let mut decisions = Vec::with_capacity(each);
                    for _ in 0..each {
                        decisions.push(limiter.check(&key, limit).await);
                        tokio::task::yield_now().await;
                    }
                    decisions
                });
            }
        }
        running.join_all().await.concat()
    }

    /// How many admitted; asserts that each had a count of its own and that refusals say 0 left.
    fn admitted(decisions: &[Decision]) -> u64 {
        let passed: Vec<u32> = decisions.iter().filter(|d| d.allowed).map(|d| d.remaining).collect();
        let distinct: HashSet<u32> = passed.iter().copied().collect();
        assert_eq!(distinct.len(), passed.len(), "every admitted request had a count of its own");
        assert!(decisions.iter().filter(|d| !d.allowed).all(|d| d.remaining == 0), "refusals say 0 left");
        passed.len() as u64
    }

    /// The window key's count in Redis (`clientele:rl:{key}:{window}:{index}`), now.
    async fn count_in_redis(connection: &mut MultiplexedConnection, key: &str, limit: RateLimit) -> u64 {
        let index = clientele::ratelimit::now_ms() / (u64::from(limit.window_secs) * 1000);
        let redis_key = format!("clientele:rl:{key}:{}:{index}", limit.window_secs);
        let count: Option<u64> = redis::cmd("GET").arg(redis_key).query_async(connection).await.unwrap();
        count.unwrap_or_default()
    }

    /// The calls that counted in Redis so far: `INCRBY`s and scripts.
    async fn counting_calls(connection: &mut MultiplexedConnection) -> u64 {
        let stats: String = redis::cmd("INFO").arg("commandstats").query_async(connection).await.unwrap();
        stats
            .lines()
            .filter(|line| line.starts_with("cmdstat_incrby:") || line.starts_with("cmdstat_eval:"))
            .filter_map(|line| line.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_instances_under_load_never_admit_more_than_the_limit_and_ask_redis_rarely() {
        let redis = private_redis();
        let mut connection = connect(&redis).await;
        let limit = RateLimit { limit: 3000, window_secs: 3600 };
        leave_room_in_window(3600, Duration::from_secs(30)).await;
        let (first, second) = (instance(&redis), instance(&redis));

        // Far below the limit: blocks serve most requests.
        let decisions = load(&[&first, &second], "busy", limit, 16, 40).await;
        assert_eq!(admitted(&decisions), 1280, "1,280 requests, all under the limit");
        let calls = counting_calls(&mut connection).await;
        assert!(calls < 1280 / 4, "{calls} calls counted 1,280 requests: most came from reserved blocks");

        // On past the limit: never more than 3,000 in all, and stranded blocks cost at most their bound.
        let more = load(&[&first, &second], "busy", limit, 16, 150).await;
        let total = admitted(&[decisions, more].concat());
        assert!(total <= 3000, "{total} admitted against a limit of 3,000");
        let stranded = (3000 / 2).min(2 * MAX_BLOCK);
        assert!(total >= 3000 - stranded, "{total} admitted: blocks left unused cost at most {stranded}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn blocks_stop_at_half_the_limit_and_the_rest_is_counted_exactly() {
        let redis = private_redis();
        let mut connection = connect(&redis).await;
        let limit = RateLimit { limit: 100, window_secs: 3600 };
        leave_room_in_window(3600, Duration::from_secs(30)).await;
        let (first, second) = (instance(&redis), instance(&redis));

        // 40 requests at once at the first instance: whatever it reserved keeps the count within 50.
        let burst = load(&[&first], "near", limit, 40, 1).await;
        assert_eq!(admitted(&burst), 40);
        let reserved_to = count_in_redis(&mut connection, "near", limit).await;
        assert!((40..=50).contains(&reserved_to), "Redis counted {reserved_to}: blocks stop at half of 100");

        // One at a time at the second: exactly the counts nobody holds, then 429s.
        let mut at_second = Vec::new();
        for _ in 0..(100 - reserved_to + 2) {
            at_second.push(second.check("near", limit).await);
        }
        assert_eq!(admitted(&at_second), 100 - reserved_to, "the second admits every count above the blocks");
        assert!(!at_second.last().unwrap().allowed);

        // The first still gives its block's counts, then refuses too: 100 in all, exactly.
        let mut at_first = Vec::new();
        for _ in 0..(reserved_to - 40 + 2) {
            at_first.push(first.check("near", limit).await);
        }
        assert_eq!(admitted(&at_first), reserved_to - 40, "the first's block, used up");
        let all = [burst, at_second, at_first].concat();
        assert_eq!(admitted(&all), 100, "the limit, exactly, across both instances");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_block_is_not_used_in_the_next_window() {
        let redis = private_redis();
        let limit = RateLimit { limit: 1000, window_secs: 1 };
        leave_room_in_window(1, Duration::from_millis(600)).await;
        let limiter = instance(&redis);
        let burst = load(&[&limiter], "rolling", limit, 50, 2).await;
        assert_eq!(admitted(&burst), 100);

        // Past the window's end the block is also past its 100 ms age, so this checks the new
        // window's count; that a young block is refused in another window is `reserve.rs`'s unit test.
        tokio::time::sleep(left_in_window(1) + Duration::from_millis(50)).await;
        let next = limiter.check("rolling", limit).await;
        assert_eq!((next.allowed, next.remaining), (true, 999), "the new window starts at a count of 1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_redis_hung_an_instance_goes_on_from_the_highest_count_it_gave() {
        let redis = private_redis();
        let limit = RateLimit { limit: 200, window_secs: 3600 };
        leave_room_in_window(3600, Duration::from_secs(30)).await;
        let limiter = instance(&redis);
        let burst = load(&[&limiter], "hung", limit, 30, 2).await;
        assert_eq!(admitted(&burst), 60);

        // Hung: the block's counts, then local counting on from the highest count given.
        redis.signal("STOP");
        let mut after = Vec::new();
        for i in 0..200 {
            let started = Instant::now();
            after.push(limiter.check("hung", limit).await);
            assert!(started.elapsed() < Duration::from_secs(1), "request {i} is fast while Redis hangs");
        }
        redis.signal("CONT");
        assert_eq!(admitted(&[burst, after].concat()), 200, "one instance alone admits the limit, exactly");
    }
}
