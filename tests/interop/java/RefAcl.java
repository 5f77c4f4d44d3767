// The Java client signing with AclClientRPCHook against a broker started with
// aclEnable=true. args: ns topic group accessKey secretKey deniedTopic.
// A producer and a push consumer with the account's credentials send and receive 20
// messages on topic; a producer with a wrong secret, and one sending to deniedTopic (which
// the account may not publish to), are refused. Reports:
//   sent, received            message counts of the signed pair
//   wrongSecret, deniedTopic  the refusal: the broker's response code and remark
import org.apache.rocketmq.acl.common.AclClientRPCHook;
import org.apache.rocketmq.acl.common.SessionCredentials;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.rebalance.AllocateMessageQueueAveragely;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.remoting.RPCHook;

public class RefAcl {
    static RPCHook hook(String ak, String sk) {
        return new AclClientRPCHook(new SessionCredentials(ak, sk));
    }

    static DefaultMQProducer producer(String ns, String group, RPCHook h) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer(group, h);
        p.setNamesrvAddr(ns);
        p.setInstanceName(group + "-" + System.nanoTime());
        p.setSendMsgTimeout(15000);
        p.setRetryTimesWhenSendFailed(0);
        p.start();
        return p;
    }

    // The refusal of one send: "code <response code>: <the broker's remark>", or "sent".
    static String refusal(DefaultMQProducer p, String topic) {
        try {
            SendResult r = p.send(new Message(topic, "A", "x".getBytes()));
            return "sent " + r.getSendStatus();
        } catch (MQClientException e) {
            Throwable cause = e.getCause();
            if (cause instanceof MQBrokerException) {
                MQBrokerException b = (MQBrokerException) cause;
                return "code " + b.getResponseCode() + ": " + b.getErrorMessage();
            }
            return "client " + e.getResponseCode() + ": " + e.getErrorMessage();
        } catch (Exception e) {
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }
    }

    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = args[1];
        String group = args[2];
        RPCHook good = hook(args[3], args[4]);
        String deniedTopic = args[5];
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group, good, new AllocateMessageQueueAveragely());
        c.setNamesrvAddr(ns);
        c.setInstanceName("acl-c");
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        DefaultMQProducer p = producer(ns, "PG_JAVA_ACL", good);
        RefUtil.sendAndReceive(p, c, topic, 20);
        RefUtil.result("deniedTopic", refusal(p, deniedTopic));
        p.shutdown();
        c.shutdown();

        DefaultMQProducer bad = producer(ns, "PG_JAVA_ACL_BAD", hook(args[3], args[4] + "-wrong"));
        RefUtil.result("wrongSecret", refusal(bad, topic));
        bad.shutdown();
        System.exit(0);
    }
}
