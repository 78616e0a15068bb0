// Package integration runs capirelay as real subprocesses (`capirelay run --config`) against
// a real Apache Kafka broker, a real redis-server and the Conversions API emulator served in
// the test process, and checks end to end that nothing is lost and nothing is sent twice:
// throughput, scale out and in, crashes, poison records, broker and Redis restarts, sink
// faults.
//
// The tests need KAFKA_BROKERS and REDIS_ADDR (scripts/test.sh starts both); without them
// they skip, unless CAPIRELAY_REQUIRE_SERVICES=1, when they fail. The broker-restart test
// starts a private broker with scripts/kafka-local.sh and the Redis-restart test a private
// redis-server, so the shared ones are never restarted.
//
// Sizes can be raised for chaos runs (defaults keep the suite within a few minutes on two
// cores):
//
//	CAPIRELAY_IT_SCALE=4                 multiply every scenario's event count
//	CAPIRELAY_IT_THROUGHPUT_EVENTS=1e6   events in the throughput smoke (default 100000)
//	CAPIRELAY_IT_EVENTS=50000            events in the other scenarios (default per scenario)
//	CAPIRELAY_IT_KILLS=20                SIGKILLs in the crash test (default 5)
//	CAPIRELAY_IT_RACE=1                  build the relay binary with -race (default: without)
//	CAPIRELAY_IT_RATE=10000              feeder rate (events/s) of the chaos scenarios (crash,
//	                                     sink faults, Redis and broker restart; default per scenario)
//	CAPIRELAY_IT_REPORT=1                the chaos scenarios log a "CHAOS-RESULT {json}" line:
//	                                     produced, distinct delivered, duplicates, dead-lettered,
//	                                     maximum lag, recovery per fault (scripts/chaos.sh)
//
// Group options on the real broker: TestScaleOutAndInKIP848 (kafka.group_protocol: consumer)
// and TestStaticMembership (kafka.instance_id, SIGKILL and rejoin without a rebalance).
package integration
