/** The per-address login limiter: window, successes not counted, IPv6 /64 buckets, bounded table. */
import assert from 'node:assert/strict';
import { addressKey, createLoginLimiter } from '../../runtime/login-limiter/index.ts';

describe('login limiter', () => {
  it('blocks an address after maxFailures within the window, until the window ends', () => {
    let now = 1_000_000;
    const l = createLoginLimiter({ maxFailures: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      assert.equal(l.blockedFor('10.0.0.1'), 0);
      l.failed('10.0.0.1');
    }
    assert.equal(l.blockedFor('10.0.0.1'), 60_000);
    assert.equal(l.blockedFor('10.0.0.2'), 0, 'other addresses are not affected');
    now += 59_000;
    assert.equal(l.blockedFor('10.0.0.1'), 1000);
    now += 1000;
    assert.equal(l.blockedFor('10.0.0.1'), 0, 'free again when the window ended');
  });

  it('takes back the count of a successful attempt, but not the failures before it', () => {
    const l = createLoginLimiter({ maxFailures: 2 });
    l.failed('10.0.0.1');
    l.succeeded('10.0.0.1');
    l.failed('10.0.0.1');
    assert.equal(l.blockedFor('10.0.0.1'), 0);
    l.failed('10.0.0.1'); // the guard counts each attempt first; this one succeeds
    l.succeeded('10.0.0.1');
    assert.equal(l.blockedFor('10.0.0.1'), 0);
    l.failed('10.0.0.1');
    assert.ok(l.blockedFor('10.0.0.1') > 0, 'two failures, whatever succeeded in between');
  });

  it('counts IPv6 addresses per /64 and IPv4-mapped addresses as IPv4', () => {
    assert.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    const l = createLoginLimiter({ maxFailures: 2 });
    l.failed('2001:db8:1:2::1');
    l.failed('2001:db8:1:2::ffff');
    assert.ok(l.blockedFor('2001:db8:1:2:1234::9') > 0, 'one /64 is one client');
  });

  it('tracks at most maxAddresses, dropping the oldest', () => {
    const l = createLoginLimiter({ maxFailures: 1, maxAddresses: 100 });
    for (let i = 0; i < 10_000; i++) l.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    assert.equal(l.size, 100);
    assert.ok(l.blockedFor('10.0.39.15') > 0, 'the newest is still blocked');
    assert.equal(l.blockedFor('10.0.0.0'), 0, 'the oldest was dropped');
  });
});
