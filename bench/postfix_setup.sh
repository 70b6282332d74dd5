#!/usr/bin/env bash
# Prepares the Postfix that bench/smtp_delivery.py --postfix compares against: Debian's
# postfix, listening on 127.0.0.1:25, delivering bench.test to virtual Maildirs under
# /var/mail/vhosts (box@ and an alias to it), as a small mail host would be set up.
set -euo pipefail
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
mkdir -p /var/mail/vhosts/bench.test
id vmail >/dev/null 2>&1 || useradd -r -u 5000 -d /var/mail/vhosts -s /usr/sbin/nologin vmail
chown -R vmail: /var/mail/vhosts
cat > /etc/postfix/main.cf <<'CF'
myhostname = postfix.bench.test
inet_interfaces = loopback-only
mydestination =
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = bench.test
virtual_mailbox_base = /var/mail/vhosts
virtual_mailbox_maps = hash:/etc/postfix/vmailbox
virtual_alias_maps = hash:/etc/postfix/virtual
virtual_uid_maps = static:5000
virtual_gid_maps = static:5000
maillog_file = /var/log/postfix.log
compatibility_level = 3.6
CF
echo "box@bench.test bench.test/box/" > /etc/postfix/vmailbox
echo "alias@bench.test box@bench.test" > /etc/postfix/virtual
postmap /etc/postfix/vmailbox /etc/postfix/virtual
postfix stop >/dev/null 2>&1 || true
postfix start
