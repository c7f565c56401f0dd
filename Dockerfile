# Docker image for Pi-hole-style setups: the static binary alone, FROM scratch.
#
#   make -f Makefile.xc static       # x86-64; `make -f Makefile.xc aarch64` for a 64-bit Pi
#   docker build --build-arg BINARY=dist/pixelserv-tls-x86_64-static -t pixelserv-tls .
#   docker run -d --name pixelserv --restart unless-stopped \
#       -p 192.168.1.3:80:80 -p 192.168.1.3:443:443 -v pixelserv:/var/cache \
#       pixelserv-tls
#
# 192.168.1.3 is the spare LAN address your blocklist answers with. CERT_PATH is given
# with -z so every architecture's image keeps the CA in the same place (router builds
# would default to /opt/var/cache/pixelserv). The server binds its ports as root, then runs
# as nobody (from the passwd file below: a static binary reads /etc/passwd itself). The
# volume is /var/cache and CERT_PATH a directory in it that the server creates at its first
# start and gives to nobody, who must write certificates there; a volume's own root
# directory is root's. To bring an existing CA, put ca.crt and ca.key in the volume's
# pixelserv/ directory. -f keeps it in the foreground and logs to stderr (`docker logs`).
# Extra options go after the image name, e.g. `... pixelserv-tls -l 3`. For the setup
# page behind the port mapping: `... pixelserv-tls --setup-host pixelserv.lan`, that name
# pointed at 192.168.1.3 in DNS, then open http://pixelserv.lan/ on each device.
FROM scratch
ARG BINARY=dist/pixelserv-tls-x86_64-static
COPY ${BINARY} /pixelserv-tls
COPY xc/docker/passwd /etc/passwd
COPY xc/docker/group /etc/group
VOLUME /var/cache
EXPOSE 80 443
ENTRYPOINT ["/pixelserv-tls", "-f", "-z", "/var/cache/pixelserv"]
