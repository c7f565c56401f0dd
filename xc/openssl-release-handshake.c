/*
 * Inserted into ssl/statem/statem_lib.c by xc/openssl-perl (XC_RELEASE_HANDSHAKE=1) for the
 * router builds; see include-docs/PERFORMANCE.md, "An idle TLS 1.3 connection, byte by byte".
 *
 * A TLS 1.3 server keeps what only its handshake needed until SSL_free: both key shares, the
 * transcript hash (and its copy for post-handshake client authentication, which this server
 * never asks for), the client's cipher, signature-algorithm, group, point-format and ALPN
 * lists, the shared signature algorithms, its own group lists copied from the context, and
 * the copy of the context's CERT that SSL_new made and the certificate callback filled in.
 * On an idle keep-alive connection that is about a fifth of its memory. This frees them
 * once the handshake has really ended: hand_state TLS_ST_OK, i.e. after the client's
 * Finished and our tickets. The early-data pause (TLS_ST_EARLY_DATA), which also passes
 * through tls_finish_handshake, still needs the transcript for EndOfEarlyData and Finished,
 * and is left alone. What later TLS 1.3 messages use (the traffic secrets, the resumption
 * secret for tickets, the session, the record layers) is not touched, and every pointer
 * freed is cleared so that SSL_free and a second pass (after a KeyUpdate) find NULL.
 *
 * The CERT is swapped for a reference to the context's, as SSL_copy_session_id shares one
 * between connections: once the Certificate message is sent nothing reads the leaf, and
 * the leaf itself stays with the certificate cache instead of with every idle connection.
 * SSL_get_certificate then answers NULL, which the server never asks.
 */
/* A list and its length, freed and cleared together. */
#define XC_FREE_LIST(p, n) \
    do {                   \
        OPENSSL_free(p);   \
        (p) = NULL;        \
        (n) = 0;           \
    } while (0)

static void xc_release_handshake(SSL_CONNECTION *s)
{
    SSL_CTX *sctx;
    size_t i;
    int refs;

    if (!s->server || !SSL_CONNECTION_IS_TLS13(s)
        || s->statem.hand_state != TLS_ST_OK)
        return;

    ssl3_free_digest_list(s);
    EVP_MD_CTX_free(s->pha_dgst);
    s->pha_dgst = NULL;

    EVP_PKEY_free(s->s3.peer_tmp);
    s->s3.peer_tmp = NULL;
    for (i = 0; i < s->s3.tmp.num_ks_pkey; i++) {
        if (s->s3.tmp.pkey == s->s3.tmp.ks_pkey[i])
            s->s3.tmp.pkey = NULL;
        EVP_PKEY_free(s->s3.tmp.ks_pkey[i]);
        s->s3.tmp.ks_pkey[i] = NULL;
    }
    s->s3.tmp.num_ks_pkey = 0;
    EVP_PKEY_free(s->s3.tmp.pkey);
    s->s3.tmp.pkey = NULL;

    XC_FREE_LIST(s->s3.tmp.ciphers_raw, s->s3.tmp.ciphers_rawlen);
    sk_SSL_CIPHER_free(s->peer_ciphers);
    s->peer_ciphers = NULL;
    XC_FREE_LIST(s->s3.tmp.peer_sigalgs, s->s3.tmp.peer_sigalgslen);
    XC_FREE_LIST(s->s3.tmp.peer_cert_sigalgs, s->s3.tmp.peer_cert_sigalgslen);
    XC_FREE_LIST(s->shared_sigalgs, s->shared_sigalgslen);
    XC_FREE_LIST(s->s3.alpn_proposed, s->s3.alpn_proposed_len);
    XC_FREE_LIST(s->ext.peer_supportedgroups, s->ext.peer_supportedgroups_len);
    XC_FREE_LIST(s->ext.peer_ecpointformats, s->ext.peer_ecpointformats_len);
    XC_FREE_LIST(s->ext.supportedgroups, s->ext.supportedgroups_len);
    XC_FREE_LIST(s->ext.keyshares, s->ext.keyshares_len);
    XC_FREE_LIST(s->ext.tuples, s->ext.tuples_len);

    sctx = SSL_CONNECTION_GET_CTX(s);
    if (sctx != NULL && sctx->cert != NULL && s->cert != sctx->cert
        && CRYPTO_UP_REF(&sctx->cert->references, &refs) > 0) {
        ssl_cert_free(s->cert);
        s->cert = sctx->cert;
        s->s3.tmp.cert = NULL;
    }
}

